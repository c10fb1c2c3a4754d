"""Alias history: which version an alias pointed to, when, from which commit and run, moved by
what. Kept in MLflow as plain tags on the versions, so it can be read without lockstep.

One tag per move, on the version the alias moved TO:

    lockstep.alias_history.<alias>.<UTC time, 20261201T101500.123456Z>
        = {"alias": "champion", "version": "7", "previous": "5", "by": "promotion",
           "at": "2026-12-01T10:15:00.123456+00:00", "commit": "<lock commit>", "run": "<workflow run URL>",
           "mlflow_run": "<run id>", "actor": "<login>", "reason": "<one line>",
           "approved_by": "<logins of the environment's reviewers who approved, a promotion only>",
           "approval": "<`approved by dana: looks good`, or why no approval is known>"}

A move never rewrites an earlier tag (no read-modify-write race between two jobs), and each value
stays far below MLflow's tag value limit (5,000 characters): text fields are cut to
`FIELD_LIMIT`, on one line, without control characters (a reviewer's comment is anyone's text, and
`lockstep history` prints it to a terminal). This module builds and reads the entries and renders them; tracking.py writes them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from . import lineage

MOVES = ("rebuild", "promotion", "rollback")
FIELD_LIMIT = 500


@dataclass(frozen=True)
class Move:
    alias: str
    version: str
    previous: str
    by: str  # one of MOVES
    at: str  # ISO 8601, UTC
    commit: str = ""
    run: str = ""
    mlflow_run: str = ""
    actor: str = ""
    reason: str = ""
    approved_by: str = ""
    approval: str = ""

    @property
    def key(self) -> str:
        when = dt.datetime.fromisoformat(self.at).astimezone(dt.timezone.utc)
        return f"{lineage.ALIAS_HISTORY_PREFIX}{self.alias}.{when.strftime('%Y%m%dT%H%M%S.%fZ')}"

    def value(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)


def move(alias: str, version: str, previous: str | None, by: str, *, commit: str = "", run: str = "",
         mlflow_run: str = "", actor: str = "", reason: str = "", approved_by: str = "", approval: str = "",
         at: dt.datetime | None = None) -> Move:
    if by not in MOVES:
        raise ValueError(f"unknown alias move {by!r}")
    when = (at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return Move(alias, str(version), str(previous or ""), by, when.isoformat(timespec="microseconds"),
                one_line(commit), one_line(run), one_line(mlflow_run), one_line(actor), one_line(reason),
                one_line(approved_by), one_line(approval))


def one_line(text: str, limit: int = FIELD_LIMIT) -> str:
    """Text for a tag: printable characters only (no terminal escapes), whitespace runs as one
    space, at most `limit` characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in str(text or ""))
    return " ".join(printable.split())[:limit]


def parse(key: str, value: str, version: str) -> Move | None:
    """A history tag read back; None when it is not one (a tag written by hand, damaged JSON)."""
    if not key.startswith(lineage.ALIAS_HISTORY_PREFIX):
        return None
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    fields = {name: one_line(data.get(name) or "") for name in Move.__dataclass_fields__}
    fields["version"] = fields["version"] or str(version)
    if not fields["alias"] or not fields["at"]:
        return None
    try:
        dt.datetime.fromisoformat(fields["at"])
    except ValueError:
        return None
    return Move(**fields)


def collect(versions: Iterable[tuple[str, Mapping[str, str]]], alias: str | None = None) -> list[Move]:
    """Every move recorded on `versions` ((version, tags) pairs), oldest first."""
    moves = [m for version, tags in versions for key, value in (tags or {}).items()
             if (m := parse(key, value, version)) is not None and (alias is None or m.alias == alias)]
    return sorted(moves, key=lambda m: (dt.datetime.fromisoformat(m.at), m.alias))


def by_alias(moves: Iterable[Move]) -> dict[str, list[Move]]:
    grouped: dict[str, list[Move]] = {}
    for item in moves:
        grouped.setdefault(item.alias, []).append(item)
    return dict(sorted(grouped.items()))


def render_markdown(model: str, moves: list[Move], *, limit: int = 20) -> str:
    """The history as a job-summary section: per alias, newest first, untrusted text inert."""
    from .report import inert

    if not moves:
        return f"### Alias history of {inert(model)}\n\nNo alias move recorded by lockstep yet.\n"
    parts = [f"### Alias history of {inert(model)}\n"]
    for alias, items in by_alias(moves).items():
        shown = list(reversed(items))[:limit]
        parts.append(f"**{inert(alias)}** (now version {inert(items[-1].version)})\n")
        parts.append("| when (UTC) | version | from | moved by | commit | run | who | why |")
        parts.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for m in shown:
            parts.append(
                f"| {inert(m.at[:19].replace('T', ' '))} | {inert(m.version)} | {inert(m.previous or '-')} | {m.by} "
                f"| {('`' + inert(m.commit[:12]) + '`') if m.commit else '-'} | {_run(m)} | {_who(m)} "
                f"| {inert(m.reason or '-', 120)} |"
            )
        if len(items) > limit:
            parts.append(f"\n{len(items) - limit} earlier move(s) not shown: `lockstep history --model NAME --alias {inert(alias)}`")
        parts.append("")
    return "\n".join(parts) + "\n"


def _who(m: Move) -> str:
    from .report import inert

    who = inert(m.actor or "-")
    if m.approval:
        who += f"; {inert(m.approval, 200)}"
    return who


def _run(m: Move) -> str:
    from .report import inert

    if m.run:
        return inert(m.run.rsplit("/", 1)[-1])
    return f"`{inert(m.mlflow_run[:12])}`" if m.mlflow_run else "-"


def render_text(model: str, moves: list[Move]) -> str:
    """The history for a terminal: one line per move, grouped by alias, oldest first."""
    if not moves:
        return f"{model}: no alias move recorded by lockstep"
    lines = []
    for alias, items in by_alias(moves).items():
        lines.append(f"{model}@{alias} (now version {items[-1].version}):")
        for m in items:
            details = [f"commit {m.commit[:12]}" if m.commit else "", f"run {m.run or m.mlflow_run}" if (m.run or m.mlflow_run) else "",
                       f"by {m.actor}" if m.actor else "", m.approval,
                       f"reason: {m.reason}" if m.reason else ""]
            lines.append(f"  {m.at[:19].replace('T', ' ')}Z  {m.previous or '-':>4} -> {m.version:<4} {m.by:<9} "
                         + "; ".join(d for d in details if d))
    return "\n".join(lines)
