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
MARKER_PREFIX = "<!-- lockstep:report "

STATUS_ICON = {"pass": "✅", "fail": "❌", "skip": "⏭️", "warn": "⚠️"}
# The title of each check lockstep runs, by check id: a report read back from JSON (a fork's
# artifact) shows these, never a title of its own; an unknown id is shown as escaped text.
CHECK_TITLES = {
    "config": "Config",
    "pull": "Pull",
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
        return json.dumps(_jsonable(data), indent=2, sort_keys=True, allow_nan=False)


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


def render(report: Report, *, details_limit: int | None = None, summary_url: str = "") -> str:
    """The Markdown report: verdict, metric table, changed params, checks, links, chart."""
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
    if failures:
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


def _url(url: str) -> str:
    """Only http(s) links, with characters that could break out of the link removed."""
    if not re.match(r"^https?://", url):
        return "#"
    return re.sub(r"[\s()<>\"'`]", "", url)[:500]


def fit(report: Report, limit: int = COMMENT_LIMIT, summary_url: str = "") -> str:
    """Render under `limit` characters: shrink details first, keep the verdict and the table."""
    for details_limit in (None, 20, 5, 0):
        text = render(report, details_limit=details_limit, summary_url=summary_url)
        if len(text) <= limit:
            return text
    text = render(report, details_limit=0, summary_url=summary_url)
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
    passed = data.get("passed")
    if not isinstance(passed, bool):
        raise ValueError(f"{source}: passed must be true or false, not {_kind(passed)}")
    if passed != (not report.failed()):
        raise ValueError(f"{source}: the verdict does not match the checks")
    return report


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
