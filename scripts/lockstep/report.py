"""The validation report: a data model, its JSON form, and its Markdown rendering.

Everything that comes from the PR or the project (metric and param names and values, paths,
branch names, error text) goes through `inert()` before it reaches Markdown, so a PR cannot
inject Markdown, HTML, images, links or @mentions into the comment or the job summary.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from . import safeload
from .metrics import Delta, GateResult, as_number, format_value, improved

COMMENT_LIMIT = 65_536  # GitHub's limit on an issue comment body, in characters
SUMMARY_PLOTS_BUDGET = 300_000  # characters of plots in the job summary (its limit is 1 MiB)
MARKER_PREFIX = "<!-- lockstep:report "

STATUS_ICON = {"pass": "✅", "fail": "❌", "skip": "⏭️", "warn": "⚠️"}
# The title of each check lockstep runs, by check id: a report read back from JSON (a fork's
# artifact) shows these, never a title of its own; an unknown id is shown as escaped text.
CHECK_TITLES = {
    "config": "Config",
    "pull": "Pull",
    "model-load": "Model loading",
    "packages": "Packages",
    "lock-vs-code": "dvc.lock vs code",
    "lock-vs-remote": "dvc.lock vs remote",
    "tests": "Project tests",
    "re-evaluation": "Re-evaluation",
    "trusted-evaluation": "Trusted evaluation",
    "base": "Base comparison",
    "gates": "Gates",
    "mlflow": "MLflow",
}

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!~|>])")
# GitHub finds @mentions, #123 / GH-123 / owner/repo#123 references and autolinks (www., scheme:,
# e-mail addresses) in the text AFTER rendering, so escapes that render back (`&#64;`, `\#`) do not
# stop them. An invisible U+2060 WORD JOINER after `@`, `#` and `:`, inside `GH-` and `www.`
# breaks each of those patterns while the text reads the same.
JOINER = "\u2060"
_BREAK_AFTER = re.compile(r"([@#:])")
_BREAK_GH = re.compile(r"(?i)\b(gh)(?=\\-)")
_BREAK_WWW = re.compile(r"(?i)(www)(?=\.)")


def inert(text: Any, limit: int = 200) -> str:
    """Render untrusted text as literal, single-line Markdown text that GitHub leaves inert:
    no HTML, no Markdown, no links or autolinks, no @mentions, no issue references."""
    value = str(text)
    value = value.encode("utf-8", "replace").decode("utf-8", "replace")
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MD_SPECIAL.sub(r"\\\1", value)
    value = _BREAK_AFTER.sub(r"\1" + JOINER, value)
    value = _BREAK_GH.sub(r"\1" + JOINER, value)
    value = _BREAK_WWW.sub(r"\1" + JOINER, value)
    return value


def marker(project: str) -> str:
    """The hidden marker that finds this project's comment again (one comment per project)."""
    safe = re.sub(r"[^A-Za-z0-9._/-]", "_", project or ".").replace("--", "-_")[:200]
    return f"{MARKER_PREFIX}project={safe} -->"


@dataclass
class Check:
    id: str
    title: str
    status: str  # pass | fail | skip | warn
    summary: str
    details: list[str] = field(default_factory=list)  # untrusted lines, rendered inert


@dataclass
class MetricRow:
    name: str
    base: Any
    pr: Any
    absolute: float | None
    relative: float | None
    direction: str | None
    gate: str | None  # pass | fail | None (no gate)
    gate_reasons: list[str] = field(default_factory=list)


@dataclass
class PlotSeries:
    """One series of a data plot (a file and field), base and PR, downsampled for the comment."""

    name: str
    base_x: list[Any] = field(default_factory=list)  # numbers, or category labels
    base_y: list[float] = field(default_factory=list)
    pr_x: list[Any] = field(default_factory=list)
    pr_y: list[float] = field(default_factory=list)
    base_points: int = 0  # before downsampling
    pr_points: int = 0


@dataclass
class ConfusionCell:
    actual: str
    predicted: str
    base: int = 0
    pr: int = 0


@dataclass
class PlotImage:
    name: str
    base_size: int | None = None  # bytes; None when that side has no such image
    pr_size: int | None = None
    changed: bool = False


@dataclass
class Plot:
    """A plot DVC knows, base vs PR. `id`, labels, names and notes are untrusted text."""

    id: str
    kind: str  # line | scatter | bar | other | confusion | image | omitted
    x_label: str = ""
    y_label: str = ""
    changed: bool = False
    series: list[PlotSeries] = field(default_factory=list)
    cells: list[ConfusionCell] = field(default_factory=list)
    images: list[PlotImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class DataRow:
    """A DVC-tracked output (data or model) the PR changed. `path` is untrusted text."""

    path: str
    change: str  # added | modified | deleted
    is_dir: bool = False
    base_size: int | None = None
    pr_size: int | None = None
    base_files: int | None = None
    pr_files: int | None = None
    files_added: int = 0
    files_modified: int = 0
    files_deleted: int = 0


@dataclass
class Timing:
    """How long something took, in seconds; `source` (untrusted) says where it was read."""

    id: str  # one of TIME_TITLES
    seconds: float
    base_seconds: float | None = None
    source: str = ""


PLOT_KINDS = ("line", "scatter", "bar", "other", "confusion", "image", "omitted")
DATA_CHANGES = ("added", "modified", "deleted")
# The title of each time lockstep reports, by id (a fork's results.json cannot name its own).
TIME_TITLES = {
    "evaluation": "evaluation in CI",
    "trusted-evaluation": "base's evaluation in CI",
    "training": "training",
    "validation": "lockstep validate",
}
PLOTS_FILE = "plots.html"  # the plots page in the report artifact


@dataclass
class Report:
    project: str
    passed: bool = True
    checks: list[Check] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    params: list[tuple[str, Any, Any]] = field(default_factory=list)
    pr_number: str = ""
    head_sha: str = ""
    base_sha: str = ""
    lock_digest: str = ""
    mlflow_run_id: str = ""
    mlflow_run_url: str = ""
    workflow_run_url: str = ""
    lockstep_version: str = ""
    # the reviewer's view: plots and data base vs PR, times (empty when not collected)
    plots: list[Plot] = field(default_factory=list)
    plots_file: str = ""  # PLOTS_FILE when the report artifact holds the plots page
    plots_note: str = ""  # why plots are missing (untrusted: DVC's message)
    data: list[DataRow] = field(default_factory=list)
    data_compared: bool = False  # a data diff ran (so an empty `data` means "no change")
    data_note: str = ""
    times: list[Timing] = field(default_factory=list)
    price_per_minute: float | None = None

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        if check.status == "fail":
            self.passed = False
        return check

    def check(self, check_id: str) -> Check | None:
        """The check with this id, or None when it did not run."""
        return next((c for c in self.checks if c.id == check_id), None)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def to_json(self) -> str:
        data = asdict(self)
        data["params"] = [{"name": n, "base": b, "pr": p} for n, b, p in self.params]
        text = json.dumps(_jsonable(data), indent=2, sort_keys=True, allow_nan=False)
        # lists of numbers on one line each (plot points): a JSON string holds no raw newline,
        # so only real lists match
        return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


_NUMBER_LIST = re.compile(r"\[\n\s*((?:-?[0-9][0-9.eE+-]*,\n\s*)*-?[0-9][0-9.eE+-]*)\n\s*\]")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def metric_rows(deltas: list[Delta], gates: list[GateResult], directions: dict[str, str]) -> list[MetricRow]:
    by_metric = {gate.metric: gate for gate in gates}
    rows = []
    for delta in deltas:
        gate = by_metric.get(delta.name)
        rows.append(
            MetricRow(
                name=delta.name,
                base=delta.base,
                pr=delta.new,
                absolute=delta.absolute,
                relative=delta.relative,
                direction=directions.get(delta.name),
                gate=gate.status if gate else None,
                gate_reasons=list(gate.reasons) if gate else [],
            )
        )
    for gate in gates:  # gated metrics missing from both sides still get a row
        if gate.metric not in {row.name for row in rows}:
            rows.append(MetricRow(gate.metric, None, None, None, None, directions.get(gate.metric), gate.status, list(gate.reasons)))
    return rows


# --- Markdown -----------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if as_number(value) is None:
        return inert(value, 40)
    return inert(format_value(value), 40)


def _delta(row: MetricRow) -> str:
    if row.absolute is None:
        return "—"
    if row.absolute == 0:
        return "0"
    arrow = "▲" if row.absolute > 0 else "▼"
    better = improved(row.direction or "higher", row.absolute) if row.direction else None
    mood = "" if better is None else (" 🟢" if better else " 🔴")
    relative = f" ({row.relative:+.2%})" if row.relative is not None else ""
    return f"{arrow} {row.absolute:+.6g}{relative}{mood}"


def title_of(check: Check) -> str:
    """A check's title as Markdown: lockstep's own title for a known id, else escaped text."""
    return CHECK_TITLES.get(check.id) or inert(check.title or check.id, 60)


def headline(report: Report) -> str:
    name = inert(report.project, 80)
    if report.passed:
        return f"## ✅ lockstep: {name} passed validation"
    failed = ", ".join(title_of(check).lower() for check in report.failed())
    return f"## ❌ lockstep: {name} failed validation ({failed})"


def _chart(rows: list[MetricRow]) -> list[str]:
    """A Mermaid bar/line chart of base vs PR for the numeric metrics GitHub renders inline."""
    numeric = [r for r in rows if _finite(r.pr) and (_finite(r.base) or r.base is None)][:12]
    if not numeric:
        return []
    labels = ", ".join(f'"{re.sub(r"[^A-Za-z0-9_.-]", "_", r.name)[:30]}"' for r in numeric)
    base = ", ".join(f"{float(r.base) if _finite(r.base) else 0:.6g}" for r in numeric)
    pr = ", ".join(f"{float(r.pr):.6g}" for r in numeric)
    values = [float(r.pr) for r in numeric] + [float(r.base) for r in numeric if _finite(r.base)]
    low, high = min(0.0, min(values)), max(values) * 1.05 or 1.0
    return [
        "```mermaid",
        "xychart-beta",
        '    title "Metrics: base (bars) vs PR (line)"',
        f"    x-axis [{labels}]",
        f'    y-axis "value" {low:.6g} --> {high:.6g}',
        f"    bar [{base}]",
        f"    line [{pr}]",
        "```",
    ]


def _finite(value: Any) -> bool:
    number = as_number(value)
    return number is not None and math.isfinite(number)


def render(report: Report, *, details_limit: int | None = None, summary_url: str = "", plots_budget: int = SUMMARY_PLOTS_BUDGET) -> str:
    """The Markdown report: verdict, metric table, changed params, times, links, data and plots
    (collapsed; plots within `plots_budget` characters), checks, chart."""
    lines = [marker(report.project), headline(report), ""]
    facts = []
    if report.pr_number:
        facts.append(f"PR #{inert(report.pr_number, 12)}")
    if report.head_sha:
        facts.append(f"head `{inert(report.head_sha[:12], 12)}`")
    if report.base_sha:
        facts.append(f"base `{inert(report.base_sha[:12], 12)}`")
    if facts:
        lines += [" · ".join(facts), ""]
    failures = report.failed()
    for check in failures:
        lines.append(f"- ❌ **{title_of(check)}**: {inert(check.summary, 400)}")
    # what asks for a maintainer's review is seen without opening anything, on a passing PR too
    warnings = [check for check in report.checks if check.status == "warn"]
    for check in warnings:
        lines.append(f"- {STATUS_ICON['warn']} **{title_of(check)}**: {inert(check.summary, 400)}")
    if failures or warnings:
        lines.append("")

    if report.metrics:
        lines += ["| metric | base | PR | Δ | gate |", "| --- | ---: | ---: | ---: | :---: |"]
        for row in report.metrics:
            gate = "—" if row.gate is None else STATUS_ICON[row.gate]
            if row.gate_reasons:
                gate += " " + inert("; ".join(row.gate_reasons), 200)
            lines.append(f"| {inert(row.name, 60)} | {_value(row.base)} | {_value(row.pr)} | {_delta(row)} | {gate} |")
        lines.append("")
    else:
        lines += ["_No metrics were found._", ""]

    changed = [p for p in report.params if p[1] != p[2]]
    if changed:
        lines += ["**Params changed**", "", "| param | base | PR |", "| --- | --- | --- |"]
        for name, base, new in changed:
            lines.append(f"| {inert(name, 60)} | {_value(base)} | {_value(new)} |")
        lines.append("")

    lines += _times(report)

    links = []
    if report.mlflow_run_url:
        links.append(f"[MLflow run]({_url(report.mlflow_run_url)})")
    elif report.mlflow_run_id:
        links.append(f"MLflow run `{inert(report.mlflow_run_id, 64)}`")
    if report.workflow_run_url:
        links.append(f"[workflow run]({_url(report.workflow_run_url)})")
    if summary_url:
        links.append(f"[full report]({_url(summary_url)})")
    if links:
        lines += [" · ".join(links), ""]

    lines += _data_section(report)
    lines += _plots_section(report, plots_budget)

    body_checks = ["<details><summary>All checks</summary>", ""]
    for check in report.checks:
        body_checks.append(f"- {STATUS_ICON[check.status]} **{title_of(check)}**: {inert(check.summary, 400)}")
        shown = check.details if details_limit is None else check.details[:details_limit]
        for detail in shown:
            body_checks.append(f"  - {inert(detail, 300)}")
        if len(shown) < len(check.details):
            body_checks.append(f"  - … {len(check.details) - len(shown)} more (see the job summary)")
    body_checks += ["", "</details>", ""]
    chart = _chart(report.metrics)
    if chart:
        body_checks += ["<details><summary>Chart</summary>", "", *chart, "", "</details>", ""]
    lines += body_checks
    lines.append(f"<sub>lockstep {inert(report.lockstep_version, 20)} · dvc.lock `{inert(report.lock_digest[:12], 12)}`</sub>")
    return "\n".join(lines) + "\n"


DATA_ROWS_SHOWN = 50


def duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _times(report: Report) -> list[str]:
    if not report.times:
        return []
    price = report.price_per_minute
    parts = []
    for timing in report.times:
        text = f"{TIME_TITLES.get(timing.id, inert(timing.id, 30))} **{duration(timing.seconds)}**"
        if timing.base_seconds is not None:
            text += f" (base {duration(timing.base_seconds)})"
        if price is not None and timing.id != "training":
            text += f" ≈ {_cost(timing.seconds, price)}"
        parts.append(text)
    lines = ["⏱️ " + " · ".join(parts)]
    if price is not None:
        lines[0] += f" <sub>(cost at {_money(price)} per runner minute)</sub>"
    sources = [f"{TIME_TITLES.get(t.id, inert(t.id, 30))}: {inert(t.source, 160)}" for t in report.times if t.source]
    if sources:
        lines[0] += f" <sub>{'; '.join(sources)}</sub>"
    return [*lines, ""]


def _money(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"


def _cost(seconds: float, price: float) -> str:
    return _money(round(seconds / 60.0 * price, 4))


def size(value: int | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(amount) < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def data_summary(report: Report) -> str:
    """One line: how many outputs were added, modified, deleted, and the change in size."""
    counts = {change: sum(1 for row in report.data if row.change == change) for change in DATA_CHANGES}
    if not report.data:
        return "no DVC-tracked data or model changed"
    parts = [f"{counts[c]} {c}" for c in DATA_CHANGES if counts[c]]
    before = sum(row.base_size or 0 for row in report.data)
    after = sum(row.pr_size or 0 for row in report.data)
    sign = "+" if after >= before else "−"
    return f"{', '.join(parts)} output(s) ({sign}{size(abs(after - before))})"


def _data_section(report: Report) -> list[str]:
    if not report.data_compared:
        if report.data_note:
            return [f"_Data and models: not compared ({inert(report.data_note, 300)})._", ""]
        return []
    lines = [f"<details><summary>Data and models: {data_summary(report)}</summary>", ""]
    if report.data:
        lines += ["| output | change | base | PR | files |", "| --- | --- | ---: | ---: | --- |"]
        for row in report.data[:DATA_ROWS_SHOWN]:
            files = ""
            if row.is_dir:
                inside = [f"{n} {label}" for n, label in ((row.files_added, "added"), (row.files_modified, "modified"),
                                                           (row.files_deleted, "deleted")) if n]
                count = f"{_count(row.base_files)} → {_count(row.pr_files)}"
                files = count + (f" ({', '.join(inside)})" if inside else "")
            icon = {"added": "🆕", "modified": "✏️", "deleted": "🗑️"}[row.change]
            name = inert(row.path, 120) + ("/" if row.is_dir else "")
            lines.append(f"| {name} | {icon} {row.change} | {size(row.base_size)} | {size(row.pr_size)} | {files} |")
        if len(report.data) > DATA_ROWS_SHOWN:
            lines.append(f"\n_… {len(report.data) - DATA_ROWS_SHOWN} more output(s) changed (see results.json in the report artifact)._")
    lines += ["", "</details>", ""]
    return lines


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _artifact_link(report: Report) -> str:
    where = f"[report artifact]({_url(report.workflow_run_url)})" if report.workflow_run_url else "report artifact"
    return f"`{PLOTS_FILE}` in the {where}"


def _plots_section(report: Report, budget: int) -> list[str]:
    if not report.plots:
        if report.plots_note:
            return [f"_Plots: not compared ({inert(report.plots_note, 300)})._", ""]
        return []
    changed = sum(1 for plot in report.plots if plot.changed)
    full = f" · every plot in full: {_artifact_link(report)}" if report.plots_file else ""
    head = [f"<details><summary>Plots: {changed} of {len(report.plots)} changed{full}</summary>", ""]
    if report.plots_note:
        head += [f"_{inert(report.plots_note, 300)}_", ""]
    tail = ["</details>", ""]
    used = len("\n".join(head + tail)) + 400
    body: list[str] = []
    left_out: list[Plot] = []
    for plot in report.plots:
        block = _plot_block(plot)
        size_of = len("\n".join(block)) + 1
        if left_out or used + size_of > budget:
            left_out.append(plot)
            continue
        body += block
        used += size_of
    if left_out:
        names = ", ".join(inert(plot.id, 60) for plot in left_out[:10]) + (" …" if len(left_out) > 10 else "")
        where = f"see {_artifact_link(report)}" if report.plots_file else "see the job summary"
        body += [f"_… {len(left_out)} more plot(s) not shown here ({sum(p.changed for p in left_out)} changed): "
                 f"{names}; {where}._", ""]
    return head + body + tail


def _plot_block(plot: Plot) -> list[str]:
    mark = "🔀 changed" if plot.changed else "unchanged"
    kind = {"omitted": "not kept in the report"}.get(plot.kind, plot.kind)
    lines = [f"<details><summary>{inert(plot.id, 120)} ({kind}, {mark})</summary>", ""]
    for note in plot.notes[:6]:
        lines.append(f"- {inert(note, 300)}")
    if plot.notes:
        lines.append("")
    if plot.kind == "confusion":
        lines += _confusion_table(plot)
    elif plot.kind == "image":
        lines += ["| image | base | PR | |", "| --- | ---: | ---: | --- |"]
        for image in plot.images:
            lines.append(f"| {inert(image.name, 120)} | {size(image.base_size)} | {size(image.pr_size)} | "
                         f"{'🔀 changed' if image.changed else 'same'} |")
        lines.append("")
    else:
        for series in plot.series:
            lines += _series_chart(plot, series)
    lines += ["</details>", ""]
    return lines


def _confusion_table(plot: Plot) -> list[str]:
    classes = list(dict.fromkeys([c.actual for c in plot.cells] + [c.predicted for c in plot.cells]))
    classes.sort(key=_label_order)
    cells = {(c.actual, c.predicted): c for c in plot.cells}
    corner = f"{inert(plot.x_label or 'actual', 30)} ↓ · {inert(plot.y_label or 'predicted', 30)} →"
    lines = [f"PR count (change vs base) · {inert(plot.x_label or 'actual', 30)} by row, "
             f"{inert(plot.y_label or 'predicted', 30)} by column", "",
             f"| {corner} | " + " | ".join(inert(c, 30) for c in classes) + " |",
             "| --- |" + " ---: |" * len(classes)]
    for actual in classes:
        row = []
        for predicted in classes:
            cell = cells.get((actual, predicted))
            base, pr = (cell.base, cell.pr) if cell else (0, 0)
            delta = pr - base
            row.append(f"{pr} ({delta:+d})" if delta else str(pr))
        lines.append(f"| **{inert(actual, 30)}** | " + " | ".join(row) + " |")
    return [*lines, ""]


def _label_order(label: str) -> tuple[int, float, str]:
    try:
        value = float(label)
        return (0, value, "") if math.isfinite(value) else (1, 0.0, label)
    except ValueError:
        return (1, 0.0, label)


def _mermaid_text(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_. /:-]", "_", str(text))[:limit]


def _series_chart(plot: Plot, series: PlotSeries) -> list[str]:
    """A Mermaid chart of one series: base as bars, PR as a line, on one x grid of ≤ 50 points."""
    base = list(zip(series.base_x, series.base_y, strict=False))
    pr = list(zip(series.pr_x, series.pr_y, strict=False))
    summary = f"**{inert(series.name, 80)}**: base {_last(base, series.base_points)} · PR {_last(pr, series.pr_points)}"
    lines = [summary, ""]
    if not pr and not base:
        return lines
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _ in base + pr)
    if numeric:
        low = min(float(x) for x, _ in base + pr)
        high = max(float(x) for x, _ in base + pr)
        count = max(2, min(50, max(len(base), len(pr))))
        grid = [low + (high - low) * i / (count - 1) for i in range(count)] if high > low else [low]
        axis = f'    x-axis "{_mermaid_text(plot.x_label or "x")}" {low:.6g} --> {high if high > low else low + 1:.6g}'
        base_values = [_interp(base, x) for x in grid] if base else []
        pr_values = [_interp(pr, x) for x in grid] if pr else []
        held = [f"{side} covers {_mermaid_text(plot.x_label or 'x', 30)} {min(float(x) for x, _ in points):.6g}–"
                f"{max(float(x) for x, _ in points):.6g} only (drawn flat outside it)"
                for side, points in (("base", base), ("PR", pr))
                if points and (min(float(x) for x, _ in points) > low or max(float(x) for x, _ in points) < high)]
    else:
        labels = list(dict.fromkeys(str(x) for x, _ in pr + base))[:50]
        axis = "    x-axis [" + ", ".join(f'"{_mermaid_text(label, 20)}"' for label in labels) + "]"
        base_map, pr_map = {str(x): y for x, y in base}, {str(x): y for x, y in pr}
        base_values = [base_map.get(label, 0.0) for label in labels] if base else []
        pr_values = [pr_map.get(label, 0.0) for label in labels] if pr else []
        held = []
    values = base_values + pr_values
    low_y, high_y = min(values), max(values)
    pad = (high_y - low_y) * 0.05 or abs(high_y) * 0.05 or 1.0
    what = "base (bars) vs PR (line)" if base and pr else ("PR only" if pr else "base only (not in the PR)")
    chart = ["```mermaid", "xychart-beta", f'    title "{_mermaid_text(series.name, 50)}: {what}"', axis,
             f'    y-axis "{_mermaid_text(plot.y_label or "y")}" {low_y - pad:.6g} --> {high_y + pad:.6g}']
    if base_values:
        chart.append("    bar [" + ", ".join(f"{v:.6g}" for v in base_values) + "]")
    if pr_values:
        chart.append("    line [" + ", ".join(f"{v:.6g}" for v in pr_values) + "]")
    chart += ["```", ""]
    if held:
        chart += [f"<sub>{inert('; '.join(held), 200)}</sub>", ""]
    return lines + chart


def _last(points: list[tuple[Any, float]], total: int) -> str:
    if not points:
        return "—"
    return f"{total} point(s), last {points[-1][1]:.6g}"


def _interp(points: list[tuple[Any, float]], x: float) -> float:
    ordered = sorted(points, key=lambda p: float(p[0]))
    if x <= float(ordered[0][0]):
        return float(ordered[0][1])
    for (x0, y0), (x1, y1) in zip(ordered, ordered[1:], strict=False):
        x0, x1 = float(x0), float(x1)
        if x0 <= x <= x1:
            return float(y0) if x1 == x0 else float(y0) + (float(y1) - float(y0)) * (x - x0) / (x1 - x0)
    return float(ordered[-1][1])


def _url(url: str) -> str:
    """Only http(s) links, with characters that could break out of the link removed."""
    if not re.match(r"^https?://", url):
        return "#"
    return re.sub(r"[\s()<>\"'`]", "", url)[:500]


def fit(report: Report, limit: int = COMMENT_LIMIT, summary_url: str = "") -> str:
    """Render under `limit` characters: the plots get what the rest leaves (those that do not fit
    are named as left out), then shrink details; keep the verdict and the table."""
    for details_limit in (None, 20, 5, 0):
        rest = len(render(report, details_limit=details_limit, summary_url=summary_url, plots_budget=0))
        budget = max(0, limit - rest - 500)
        text = render(report, details_limit=details_limit, summary_url=summary_url, plots_budget=budget)
        if len(text) <= limit:
            return text
    text = render(report, details_limit=0, summary_url=summary_url, plots_budget=0)
    note = "\n\n_…truncated: the full report is in the job summary._\n"
    return text[: limit - len(note)] + note


RESULTS_MAX_BYTES = 1_000_000
RESULTS_MAX_DEPTH = 8  # results.json is an object of lists of flat objects


def from_json(text: str, source: str = "results.json") -> Report:
    """Rebuild a Report from results.json (the fork-safe path re-renders from data, never posts
    Markdown it did not render itself). Unknown keys are ignored; anything malformed (not JSON,
    too large or too deep, a field of the wrong type, a status outside the fixed set) raises
    ValueError naming the field."""
    data = safeload.load_json(text, source, max_bytes=RESULTS_MAX_BYTES, max_depth=RESULTS_MAX_DEPTH)
    if not isinstance(data, dict):
        raise ValueError(f"{source} must hold an object, not {_kind(data)}")

    def text_field(name: str, where: dict = data, label: str = "") -> str:
        value = where.get(name, "")
        if value is None:
            value = ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"{source}: {label}{name} must be a string, not {_kind(value)}")
        return str(value)

    def text_list(name: str, where: dict, label: str) -> list[str]:
        value = where.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{source}: {label}{name} must be a list of strings")
        return list(value)

    report = Report(project=text_field("project") or ".")
    for name in ("pr_number", "head_sha", "base_sha", "lock_digest", "mlflow_run_id", "mlflow_run_url", "workflow_run_url", "lockstep_version"):
        setattr(report, name, text_field(name))
    for index, item in enumerate(_list(data, "checks", source)):
        label = f"checks[{index}]."
        status = item.get("status")
        if status not in STATUS_ICON:
            raise ValueError(f"{source}: unknown check status {inert(status, 40)!s}")
        report.add(
            Check(
                text_field("id", item, label),
                text_field("title", item, label),
                status,
                text_field("summary", item, label),
                text_list("details", item, label),
            )
        )
    for index, item in enumerate(_list(data, "metrics", source)):
        label = f"metrics[{index}]."
        gate = item.get("gate")
        if gate not in (None, "pass", "fail"):
            raise ValueError(f"{source}: unknown gate status {inert(gate, 40)!s}")
        direction = item.get("direction")
        if direction not in (None, "higher", "lower"):
            raise ValueError(f"{source}: {label}direction must be higher or lower")
        report.metrics.append(
            MetricRow(
                name=text_field("name", item, label),
                base=_scalar(item.get("base"), source, label + "base"),
                pr=_scalar(item.get("pr"), source, label + "pr"),
                absolute=_number_or_none(item.get("absolute"), source, label + "absolute"),
                relative=_number_or_none(item.get("relative"), source, label + "relative"),
                direction=direction,
                gate=gate,
                gate_reasons=text_list("gate_reasons", item, label),
            )
        )
    for index, item in enumerate(_list(data, "params", source)):
        label = f"params[{index}]."
        report.params.append(
            (text_field("name", item, label), _scalar(item.get("base"), source, label + "base"), _scalar(item.get("pr"), source, label + "pr"))
        )
    _review_from_json(report, data, source, text_field, text_list)
    passed = data.get("passed")
    if not isinstance(passed, bool):
        raise ValueError(f"{source}: passed must be true or false, not {_kind(passed)}")
    if passed != (not report.failed()):
        raise ValueError(f"{source}: the verdict does not match the checks")
    return report


# Bounds of the reviewer's view in a results.json read back (a fork's artifact): what lockstep
# itself writes stays well inside them.
_MAX_PLOTS_READ = 1000
_MAX_SERIES_READ = 20
_MAX_POINTS_READ = 100
_MAX_CELLS_READ = 2500
_MAX_ROWS_READ = 5000


def _review_from_json(report: Report, data: dict, source: str, text_field, text_list) -> None:
    """The plots, data changes and times of results.json, each field checked for its type, its
    set of values and its bounds; their text is rendered inert like everything else."""
    plots = _list(data, "plots", source)
    if len(plots) > _MAX_PLOTS_READ:
        raise ValueError(f"{source}: more than {_MAX_PLOTS_READ} plots")
    for index, item in enumerate(plots):
        label = f"plots[{index}]."
        kind = item.get("kind")
        if kind not in PLOT_KINDS:
            raise ValueError(f"{source}: {label}kind must be one of {', '.join(PLOT_KINDS)}")
        plot = Plot(
            id=text_field("id", item, label), kind=kind, x_label=text_field("x_label", item, label),
            y_label=text_field("y_label", item, label), changed=_bool(item, "changed", source, label),
            notes=text_list("notes", item, label)[:20],
        )
        series = _list(item, "series", source)
        if len(series) > _MAX_SERIES_READ:
            raise ValueError(f"{source}: {label}series holds more than {_MAX_SERIES_READ} series")
        for number, entry in enumerate(series):
            where = f"{label}series[{number}]."
            plot.series.append(PlotSeries(
                name=text_field("name", entry, where),
                base_x=_points(entry, "base_x", source, where, labels=True),
                base_y=_points(entry, "base_y", source, where),
                pr_x=_points(entry, "pr_x", source, where, labels=True),
                pr_y=_points(entry, "pr_y", source, where),
                base_points=_count_field(entry, "base_points", source, where),
                pr_points=_count_field(entry, "pr_points", source, where),
            ))
            if len(plot.series[-1].base_x) != len(plot.series[-1].base_y) or len(plot.series[-1].pr_x) != len(plot.series[-1].pr_y):
                raise ValueError(f"{source}: {where}x and y must have as many values")
        cells = _list(item, "cells", source)
        if len(cells) > _MAX_CELLS_READ:
            raise ValueError(f"{source}: {label}cells holds more than {_MAX_CELLS_READ} cells")
        for number, entry in enumerate(cells):
            where = f"{label}cells[{number}]."
            plot.cells.append(ConfusionCell(text_field("actual", entry, where), text_field("predicted", entry, where),
                                            _count_field(entry, "base", source, where), _count_field(entry, "pr", source, where)))
        images = _list(item, "images", source)
        if len(images) > _MAX_ROWS_READ:
            raise ValueError(f"{source}: {label}images holds more than {_MAX_ROWS_READ} images")
        for number, entry in enumerate(images):
            where = f"{label}images[{number}]."
            plot.images.append(PlotImage(text_field("name", entry, where), _count_or_none(entry, "base_size", source, where),
                                         _count_or_none(entry, "pr_size", source, where), _bool(entry, "changed", source, where)))
        report.plots.append(plot)
    plots_file = text_field("plots_file")
    if plots_file not in ("", PLOTS_FILE):
        raise ValueError(f"{source}: plots_file must be empty or {PLOTS_FILE}")
    report.plots_file = plots_file
    report.plots_note = text_field("plots_note")
    report.data_note = text_field("data_note")
    report.data_compared = _bool(data, "data_compared", source, "")
    rows = _list(data, "data", source)
    if len(rows) > _MAX_ROWS_READ:
        raise ValueError(f"{source}: data holds more than {_MAX_ROWS_READ} rows")
    for index, item in enumerate(rows):
        label = f"data[{index}]."
        change = item.get("change")
        if change not in DATA_CHANGES:
            raise ValueError(f"{source}: {label}change must be one of {', '.join(DATA_CHANGES)}")
        report.data.append(DataRow(
            text_field("path", item, label), change, _bool(item, "is_dir", source, label),
            _count_or_none(item, "base_size", source, label), _count_or_none(item, "pr_size", source, label),
            _count_or_none(item, "base_files", source, label), _count_or_none(item, "pr_files", source, label),
            _count_field(item, "files_added", source, label), _count_field(item, "files_modified", source, label),
            _count_field(item, "files_deleted", source, label),
        ))
    times = _list(data, "times", source)
    for index, item in enumerate(times[:10]):
        label = f"times[{index}]."
        timing_id = item.get("id")
        if timing_id not in TIME_TITLES:
            raise ValueError(f"{source}: {label}id must be one of {', '.join(TIME_TITLES)}")
        seconds = _seconds(item.get("seconds"), source, label + "seconds")
        if seconds is None:
            raise ValueError(f"{source}: {label}seconds must be a number of seconds")
        report.times.append(Timing(timing_id, seconds, _seconds(item.get("base_seconds"), source, label + "base_seconds"),
                                   text_field("source", item, label)))
    price = data.get("price_per_minute")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not (0 <= price <= 1_000_000):
            raise ValueError(f"{source}: price_per_minute must be a number from 0 to 1000000, or null")
        report.price_per_minute = float(price)


def _bool(item: dict, name: str, source: str, label: str) -> bool:
    value = item.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{source}: {label}{name} must be true or false, not {_kind(value)}")
    return value


def _count_field(item: dict, name: str, source: str, label: str) -> int:
    value = _count_or_none(item, name, source, label)
    return 0 if value is None else value


def _count_or_none(item: dict, name: str, source: str, label: str) -> int | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < 10**15):
        raise ValueError(f"{source}: {label}{name} must be a whole number from 0, not {_kind(value)}")
    return value


def _seconds(value: Any, source: str, label: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 10**9):
        raise ValueError(f"{source}: {label} must be a number of seconds")
    return float(value)


def _points(item: dict, name: str, source: str, label: str, *, labels: bool = False) -> list[Any]:
    value = item.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_POINTS_READ:
        raise ValueError(f"{source}: {label}{name} must be a list of at most {_MAX_POINTS_READ} values")
    for point in value:
        finite = isinstance(point, (int, float)) and not isinstance(point, bool) and math.isfinite(point)
        if not (finite or (labels and isinstance(point, str) and len(point) <= 200)):
            raise ValueError(f"{source}: {label}{name} must hold finite numbers{' or labels' if labels else ''}")
    return list(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _list(data: dict, key: str, source: str) -> list[dict]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{source}: {key} must be a list of objects")
    return value


def _scalar(value: Any, source: str, label: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{source}: {label} must be a number, a string, a boolean or null, not {_kind(value)}")


def _number_or_none(value: Any, source: str, label: str) -> float | None:
    if value is None or value in ("inf", "-inf", "nan"):  # to_json writes non-finite numbers so
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source}: {label} must be a number or null, not {_kind(value)}")
    return float(value)
