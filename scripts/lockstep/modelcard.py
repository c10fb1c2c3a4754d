"""The model card of a CI-built version: what it is, where it came from, how it scores and what
it was checked against. Rendered as Markdown for the MLflow version description, a
`model_card.md` artifact of the rebuild's run, and the rebuild's job summary. Pure rendering:
everything it shows is given to it (registry.py gathers it); every value from the repository
(paths, param and metric names and values, reasons, commit text) is rendered inert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .metrics import GateResult, as_number, format_value
from .report import inert

# MLflow's SQL stores hold a version description in a 5,000-character column
DESCRIPTION_LIMIT = 5000


@dataclass
class Card:
    model: str
    version: str
    alias: str
    lockstep_version: str
    previous_version: str = ""  # the version the alias pointed to before this one
    promote_to: str = ""
    promoted: bool | None = None  # None: promotion left to an approval (or not configured)
    promotion_note: str = ""  # why it was not promoted although the gates passed
    repository: str = ""
    project: str = ""
    lock_commit: str = ""
    start_commit: str = ""
    pr_number: str = ""
    lock_sha256: str = ""
    model_path: str = ""
    model_md5: str = ""
    model_sha256: str = ""
    stages: list[str] = field(default_factory=list)
    trigger: str = ""
    reason: str = ""
    actor: str = ""
    workflow_run_url: str = ""
    mlflow_run_id: str = ""
    created_at: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    previous_metrics: Mapping[str, Any] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)
    inputs: Mapping[str, str] = field(default_factory=dict)  # dependency path -> DVC digest
    evaluation_stages: list[str] = field(default_factory=list)
    evaluation_data: Mapping[str, str] = field(default_factory=dict)


def _code(text: Any, limit: int = 200) -> str:
    """A value as a code span (digests, paths): Markdown, HTML, mentions and links are not parsed
    inside one; a backtick would end it and a pipe would end the table cell."""
    value = "".join(ch if ch.isprintable() else " " for ch in str(text or ""))
    value = value if len(value) <= limit else value[: limit - 1] + "…"
    value = value.replace("`", "'").replace("|", "\\|").strip()
    return f"`{value}`" if value else "-"


def _value(value: Any) -> str:
    return inert(format_value(value) if as_number(value) is not None else value, 80)


def _change(new: Any, old: Any) -> str:
    a, b = as_number(new), as_number(old)
    if old is None:
        return "new"
    if a is None or b is None:
        return "-"
    delta = a - b
    if delta == 0:
        return "="
    text = f"{delta:+.6g}"
    if b:
        text += f" ({delta / abs(b):+.2%})"
    return text  # digits, signs, a dot and a percent sign: nothing to escape


def _lineage(card: Card) -> list[str]:
    rows = [
        ("model", f"{inert(card.model)} version {inert(card.version)} (alias {_code(card.alias)})"),
        ("repository", inert(card.repository) or "-"),
        ("project", inert(card.project) or "-"),
        ("lock commit", _code(card.lock_commit, 64)),
        ("built from", _code(card.start_commit, 64)),
        ("pull request", f"{inert('#' + card.pr_number)}" if card.pr_number else "not known"),
        ("dvc.lock SHA-256", _code(card.lock_sha256, 64)),
        ("model file", _code(card.model_path)),
        ("model SHA-256", _code(card.model_sha256, 64)),
        ("model DVC md5", _code(card.model_md5, 64)),
        ("stages rebuilt", inert(", ".join(card.stages)) or "-"),
        ("trigger", inert(card.trigger) or "-"),
        ("reason", inert(card.reason, 300) or "-"),
        ("actor", inert(card.actor) or "-"),
        ("workflow run", inert(card.workflow_run_url, 300) or "-"),
        ("MLflow run", _code(card.mlflow_run_id, 64)),
        ("built at (UTC)", inert(card.created_at) or "-"),
        ("lockstep", inert(card.lockstep_version)),
    ]
    return ["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)]


def _metrics(card: Card) -> list[str]:
    if not card.metrics:
        return ["No metrics were read from the rebuilt pipeline."]
    against = f"version {inert(card.previous_version)}" if card.previous_version else "no earlier version"
    lines = [f"Compared with the version `{inert(card.alias)}` pointed to before: {against}.", "",
             "| metric | value | before | change |", "| --- | ---: | ---: | ---: |"]
    for name in sorted(card.metrics):
        old = card.previous_metrics.get(name) if card.previous_version else None
        lines.append(f"| {inert(name)} | {_value(card.metrics[name])} | {_value(old) if old is not None else '-'} "
                     f"| {_change(card.metrics[name], old) if card.previous_version else '-'} |")
    return lines


def _gates(card: Card) -> list[str]:
    if not card.gates:
        return ["No gates are configured in lockstep.yaml."]
    passed = sum(1 for g in card.gates if g.passed)
    lines = [f"{passed} of {len(card.gates)} gate(s) passed against version {inert(card.previous_version)}"
             if card.previous_version else f"{passed} of {len(card.gates)} gate(s) passed (no earlier version to compare with)"]
    lines += ["", "| gate | result | checked | why |", "| --- | --- | --- | --- |"]
    for gate in card.gates:
        lines.append(f"| {inert(gate.metric)} | {'✅ passed' if gate.passed else '❌ failed'} "
                     f"| {inert(', '.join(gate.checks)) or '-'} | {inert('; '.join(gate.reasons), 300) or '-'} |")
    if card.promote_to:
        state = {True: f"promoted to `{inert(card.promote_to)}`", False: f"not promoted to `{inert(card.promote_to)}`",
                 None: f"promotion to `{inert(card.promote_to)}` waits for approval"}[card.promoted]
        note = f": {inert(card.promotion_note, 300)}" if card.promotion_note and card.promoted is False else ""
        lines += ["", f"Promotion: {state}{note}."]
    return lines


def _table(mapping: Mapping[str, Any], head: tuple[str, str]) -> list[str]:
    if not mapping:
        return ["None recorded."]
    return [f"| {head[0]} | {head[1]} |", "| --- | --- |",
            *(f"| {inert(k)} | {_code(v, 120) if head[1] == 'digest' else _value(v)} |" for k, v in sorted(mapping.items()))]


def render(card: Card, *, compact: bool = False) -> str:
    """The card as Markdown. `compact` leaves out the params and the inputs' digests (for
    MLflow's description limit; the artifact always has everything)."""
    parts = [f"# Model card: {inert(card.model)} version {inert(card.version)}", "",
             "Built by CI from the commit below with lockstep; never taken from a developer's machine.", "",
             "## Lineage", "", *_lineage(card), "",
             "## Metrics", "", *_metrics(card), "",
             "## Gates", "", *_gates(card), "",
             "## Evaluation", "",
             f"Stages: {inert(', '.join(card.evaluation_stages)) or '-'}", ""]
    if compact:
        parts += [f"Evaluation data, params and input digests: see `model_card.md` of MLflow run {_code(card.mlflow_run_id, 64)}.", ""]
        return "\n".join(parts)
    parts += [*_table(card.evaluation_data, ("data", "digest")), "",
              "## Params", "", *_table(card.params, ("param", "value")), "",
              "## Inputs of the rebuilt stages", "", *_table(card.inputs, ("dependency", "digest")), ""]
    return "\n".join(parts)


def description(card: Card, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card for the version description: whole when it fits, else compact, else cut."""
    full = render(card)
    if len(full) <= limit:
        return full
    short = render(card, compact=True)
    if len(short) <= limit:
        return short
    note = "\n\n(cut to fit MLflow's description limit: the full card is the run's `model_card.md`)\n"
    return short[: limit - len(note)] + note
