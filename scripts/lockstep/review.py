"""The reviewer's view of a pull request: its plots and its data changes, base vs PR. Pure
functions over what dvcrepo read (no DVC here): the report's rows, bounded and downsampled for
the comment, and a self-contained HTML page of every plot for the report artifact.

Everything read from the repository is untrusted: the report renders it inert, and the HTML page
escapes it, embeds images only as data URIs of raster formats, and forbids scripts and any load
from elsewhere by its content security policy.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

from .report import ConfusionCell, DataRow, Plot, PlotImage, PlotSeries, Timing

MAX_POINTS = 50  # per series and side in the report (Mermaid charts)
MAX_SERIES = 6  # per plot in the report; the HTML page has them all
MAX_CLASSES = 30  # confusion matrix classes in the report
MAX_PLOTS = 300  # plots kept with their data in the report; the rest are named only
HTML_POINTS = 2000  # per series in the HTML page
HTML_IMAGES_BYTES = 8_000_000  # images embedded in the HTML page, all together

LINE_TEMPLATES = {"", "linear", "simple", "smooth"}
SCATTER_TEMPLATES = {"scatter", "scatter_jitter"}
CONFUSION_TEMPLATES = {"confusion", "confusion_normalized"}
BAR_TEMPLATES = {"bar_horizontal", "bar_horizontal_sorted"}


def number(value: Any) -> float | None:
    """A plot value as a finite float (TSV and CSV give strings), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


# --- plots --------------------------------------------------------------------------------------


def plots_view(reads: Sequence[Any]) -> list[Plot]:
    """The report's plots, changed ones first, each bounded for the comment."""
    plots = []
    for index, read in enumerate(reads):
        if index >= MAX_PLOTS:
            plots.append(Plot(id=str(read.id), kind="omitted", changed=_changed(read)))
            continue
        plots.append(_image_plot(read) if read.kind == "image" else _data_plot(read))
    plots.sort(key=lambda plot: (not plot.changed, plot.kind == "omitted"))
    return plots


def _changed(read: Any) -> bool:
    if read.kind == "image":
        return dict(read.base_images) != dict(read.pr_images)
    return read.base_rows != read.pr_rows


def _image_plot(read: Any) -> Plot:
    base, pr = dict(read.base_images), dict(read.pr_images)
    images = [
        PlotImage(name, len(base[name]) if name in base else None, len(pr[name]) if name in pr else None,
                  base.get(name) != pr.get(name))
        for name in sorted(set(base) | set(pr))
    ]
    return Plot(id=str(read.id), kind="image", changed=any(i.changed for i in images), images=images[:100],
                notes=list(read.errors[:5]) + ([f"{len(images) - 100} more image(s) in the report artifact"] if len(images) > 100 else []))


def _kind(read: Any) -> str:
    template = read.template.lower()
    if template in CONFUSION_TEMPLATES:
        return "confusion"
    if template in SCATTER_TEMPLATES:
        return "scatter"
    if template in BAR_TEMPLATES:
        return "bar"
    rows = read.pr_rows or read.base_rows
    if rows and template in LINE_TEMPLATES and read.x and read.y:
        categorical = all(number(row.get(read.x)) is None for row in rows) and all(
            number(_y(read, row)) is None for row in rows)
        if categorical:
            return "confusion"
    return "line" if template in LINE_TEMPLATES else "other"


def _y(read: Any, row: dict) -> Any:
    if read.y in row:
        return row[read.y]
    return row.get(str(row.get("field", "")))


def _data_plot(read: Any) -> Plot:
    kind = _kind(read)
    plot = Plot(id=str(read.id), kind=kind, x_label=read.x_label, y_label=read.y_label, changed=_changed(read),
                notes=list(read.errors[:5]))
    if read.pr_from == "HEAD":
        plot.notes.append("PR side as committed (its stage was not re-run in CI)")
    if kind == "confusion":
        plot.cells, dropped = confusion(read)
        if dropped:
            plot.notes.append(f"{dropped} class(es) beyond the first {MAX_CLASSES} are in the report artifact only")
        return plot
    series = group_series(read)
    for name, (base, pr) in list(series.items())[:MAX_SERIES]:
        entry = PlotSeries(name=name, base_points=len(base), pr_points=len(pr))
        entry.base_x, entry.base_y = _reduce(base, kind)
        entry.pr_x, entry.pr_y = _reduce(pr, kind)
        plot.series.append(entry)
    if len(series) > MAX_SERIES:
        plot.notes.append(f"{len(series) - MAX_SERIES} more series in the report artifact")
    if kind == "scatter" and any(s.base_points > MAX_POINTS or s.pr_points > MAX_POINTS for s in plot.series):
        plot.notes.append(f"points sorted by x and averaged in up to {MAX_POINTS} bins")
    return plot


def group_series(read: Any) -> dict[str, tuple[list[tuple[Any, float]], list[tuple[Any, float]]]]:
    """{series name: (base points, PR points)}: one series per source file and field."""
    keys: dict[tuple[str, str], tuple[list, list]] = {}
    for side, rows in ((0, read.base_rows), (1, read.pr_rows)):
        for row in rows:
            y = number(_y(read, row))
            if y is None:
                continue
            x_raw = row.get(read.x)
            x = number(x_raw)
            key = (str(row.get("filename", "")), str(row.get("field", read.y)))
            keys.setdefault(key, ([], []))[side].append((x if x is not None else str(x_raw), y))
    files = {key[0] for key in keys}
    return {(field if len(files) == 1 else f"{file}: {field}"): points for (file, field), points in keys.items()}


def _reduce(points: list[tuple[Any, float]], kind: str) -> tuple[list[Any], list[float]]:
    """At most MAX_POINTS points: evenly by index for a line (first and last kept), averaged in
    bins along x for a scatter plot."""
    if not points:
        return [], []
    numeric_x = all(isinstance(x, float) for x, _ in points)
    if kind == "scatter" and numeric_x and len(points) > MAX_POINTS:
        ordered = sorted(points, key=lambda p: p[0])
        bins = [ordered[round(i * len(ordered) / MAX_POINTS): round((i + 1) * len(ordered) / MAX_POINTS)] for i in range(MAX_POINTS)]
        bins = [b for b in bins if b]
        return [_round(sum(p[0] for p in b) / len(b)) for b in bins], [_round(sum(p[1] for p in b) / len(b)) for b in bins]
    chosen = points if len(points) <= MAX_POINTS else [points[round(i * (len(points) - 1) / (MAX_POINTS - 1))] for i in range(MAX_POINTS)]
    xs = [_round(x) if isinstance(x, float) else str(x)[:40] for x, _ in chosen]
    return xs, [_round(y) for _, y in chosen]


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def confusion(read: Any) -> tuple[list[ConfusionCell], int]:
    """Counts per (actual, predicted) for base and PR, and how many classes were left out."""
    counts: dict[tuple[str, str], list[int]] = {}
    for side, rows in ((0, read.base_rows), (1, read.pr_rows)):
        for row in rows:
            key = (str(row.get(read.x, ""))[:40], str(_y(read, row))[:40])
            counts.setdefault(key, [0, 0])[side] += 1
    classes = sorted({a for a, _ in counts} | {p for _, p in counts}, key=_class_order)
    kept = set(classes[:MAX_CLASSES])
    cells = [ConfusionCell(a, p, base, pr) for (a, p), (base, pr) in sorted(counts.items(), key=lambda kv: (_class_order(kv[0][0]), _class_order(kv[0][1])))
             if a in kept and p in kept]
    return cells, max(0, len(classes) - MAX_CLASSES)


def _class_order(label: str) -> tuple[int, float, str]:
    value = number(label)
    return (0, value, "") if value is not None else (1, 0.0, label)


def training_time(reads: Sequence[Any]) -> list[Timing]:
    """Training time where dvclive recorded it: the span of the `timestamp` column (milliseconds)
    of the plots it logs per step, base and PR; the longest file wins."""
    spans = {"base": (0.0, ""), "pr": (0.0, "")}
    for read in reads:
        if read.kind != "vega":
            continue
        for side, rows in (("base", read.base_rows), ("pr", read.pr_rows)):
            per_file: dict[str, list[float]] = {}
            for row in rows:
                stamp = number(row.get("timestamp"))
                if stamp is not None:
                    per_file.setdefault(str(row.get("filename", "")), []).append(stamp)
            for name, stamps in per_file.items():
                span = (max(stamps) - min(stamps)) / 1000.0
                if len(stamps) > 1 and span > spans[side][0]:
                    spans[side] = (span, name)
    if not spans["pr"][0]:
        return []
    return [Timing("training", round(spans["pr"][0], 3), round(spans["base"][0], 3) if spans["base"][0] else None,
                   f"dvclive timestamps in {spans['pr'][1]} (first to last logged step)")]


# --- data ---------------------------------------------------------------------------------------


def data_rows(changes: Sequence[Any]) -> list[DataRow]:
    return [
        DataRow(c.path, c.change, c.is_dir, c.base_size, c.pr_size, c.base_files, c.pr_files,
                c.files_added, c.files_modified, c.files_deleted)
        for c in changes
    ]


# --- the HTML page (report artifact) -------------------------------------------------------------

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
                (b"GIF89a", "image/gif"))


def plots_html(reads: Sequence[Any], *, title: str, base_label: str, pr_label: str) -> str:
    """Every plot base vs PR on one self-contained page: SVG charts, tables, embedded images."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}section{margin:2em 0;border-top:1px solid #ddd}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
        ".base{stroke:#999;stroke-dasharray:4 3}.pr{stroke:#1f6feb}svg text{font-size:11px}"
        ".legend span{margin-right:1.5em}.up{color:#1a7f37}.down{color:#cf222e}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="legend"><span>base: {esc(base_label)} (grey, dashed)</span><span>PR: {esc(pr_label)} (blue)</span></p>',
    ]
    if not reads:
        parts.append("<p>DVC knows no plots in this project.</p>")
    budget = [HTML_IMAGES_BYTES]
    for read in reads:
        parts.append(f"<section><h2>{esc(str(read.id))}</h2>")
        for error in read.errors:
            parts.append(f"<p>could not be read: {esc(error)}</p>")
        if read.kind == "image":
            parts.append(_html_images(read, budget))
        elif _kind(read) == "confusion":
            parts.append(_html_confusion(read))
        else:
            for name, (base, pr) in group_series(read).items():
                parts.append(f"<h3>{esc(name)}</h3>")
                parts.append(_svg(base, pr, read.x_label, read.y_label))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _thin(points: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
    if len(points) <= HTML_POINTS:
        return points
    return [points[round(i * (len(points) - 1) / (HTML_POINTS - 1))] for i in range(HTML_POINTS)]


def _svg(base: list[tuple[Any, float]], pr: list[tuple[Any, float]], x_label: str, y_label: str) -> str:
    width, height, pad = 640, 300, 50
    series = [(_thin(base), "base"), (_thin(pr), "pr")]
    xs_all = [p[0] for points, _ in series for p in points]
    numeric = all(isinstance(x, float) for x in xs_all)
    order = {x: i for i, x in enumerate(dict.fromkeys(xs_all))} if not numeric else {}
    xs = [x if numeric else order[x] for x in xs_all] or [0.0]
    ys = [p[1] for points, _ in series for p in points] or [0.0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def at(x: Any, y: float) -> str:
        xv = x if numeric else order[x]
        return f"{pad + (xv - x0) / (x1 - x0) * (width - 2 * pad):.1f},{height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad):.1f}"

    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="none" stroke="#ccc"/>']
    for points, css in series:
        if points:
            lines.append(f'<polyline class="{css}" fill="none" stroke-width="2" points="{" ".join(at(x, y) for x, y in points)}"/>')
    esc = html.escape
    lines += [
        f'<text x="{pad}" y="{height - pad + 15}">{x0:.4g}</text>',
        f'<text x="{width - pad}" y="{height - pad + 15}" text-anchor="end">{x1:.4g}</text>',
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">{esc(x_label)}</text>',
        f'<text x="{pad - 5}" y="{height - pad}" text-anchor="end">{y0:.4g}</text>',
        f'<text x="{pad - 5}" y="{pad + 10}" text-anchor="end">{y1:.4g}</text>',
        f'<text x="10" y="{pad - 15}">{esc(y_label)}</text>',
        "</svg>",
    ]
    return "\n".join(lines)


def _html_confusion(read: Any) -> str:
    esc = html.escape
    counts: dict[tuple[str, str], list[int]] = {}
    for side, rows in ((0, read.base_rows), (1, read.pr_rows)):
        for row in rows:
            counts.setdefault((str(row.get(read.x, "")), str(_y(read, row))), [0, 0])[side] += 1
    classes = sorted({a for a, _ in counts} | {p for _, p in counts}, key=_class_order)
    rows = [f"<tr><th>{esc(read.x_label)} \\ {esc(read.y_label)}</th>" + "".join(f"<th>{esc(c)}</th>" for c in classes) + "</tr>"]
    for actual in classes:
        cells = []
        for predicted in classes:
            base, pr = counts.get((actual, predicted), [0, 0])
            delta = pr - base
            mark = f' <span class="{"up" if delta > 0 else "down"}">({delta:+d})</span>' if delta else ""
            cells.append(f"<td>{pr}{mark}</td>")
        rows.append(f"<tr><th>{esc(actual)}</th>{''.join(cells)}</tr>")
    return "<p>PR count (change vs base)</p><table>" + "".join(rows) + "</table>"


def _html_images(read: Any, budget: list[int]) -> str:
    esc = html.escape
    base, pr = dict(read.base_images), dict(read.pr_images)
    out = ["<table><tr><th>file</th><th>base</th><th>PR</th></tr>"]
    for name in sorted(set(base) | set(pr)):
        cells = []
        for content in (base.get(name), pr.get(name)):
            if content is None:
                cells.append("<td>—</td>")
                continue
            mime = next((m for magic, m in _IMAGE_TYPES if content.startswith(magic)), "")
            if mime and len(content) <= budget[0]:
                budget[0] -= len(content)
                data = base64.b64encode(content).decode("ascii")
                cells.append(f'<td><img alt="" style="max-width:480px" src="data:{mime};base64,{data}"><br>{len(content)} bytes</td>')
            else:
                cells.append(f"<td>{len(content)} bytes (not embedded)</td>")
        out.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}</tr>")
    out.append("</table>")
    return "\n".join(out)
