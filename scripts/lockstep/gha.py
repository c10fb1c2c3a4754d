"""GitHub Actions I/O: the one module that talks to the runner.

Outputs (with heredoc delimiters for multi-line values), the job summary, workflow commands
(annotations, masks, log groups) and the reading of inputs all live here, so that every command
behaves the same way and tests can point the files at a temporary folder.

Outside GitHub Actions (no GITHUB_OUTPUT, no GITHUB_STEP_SUMMARY) the same calls degrade to
plain log lines, so the CLI is usable on a laptop.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
from collections.abc import Iterator
from typing import TextIO


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _clean(text: str) -> str:
    """Valid UTF-8 only: project files can hold undecodable bytes (lone surrogates here)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def neutralise(text: str) -> str:
    """Text for the log that the runner cannot read as a workflow command.

    The runner takes a line as a command when it starts with `::` after leading whitespace
    (`::error ...`, `::add-mask::`, `::stop-commands::`, `::set-output`), and the legacy form `##[`
    anywhere in a line. A path, stage name, metric name or error text from the repository can hold
    newlines and either form: each line's leading `::` becomes `: :`, and `##[` becomes `# #[`.
    """
    lines = _LINE_BREAK.split(text)
    return "\n".join(_COMMAND_START.sub(r"\1: :", line).replace("##[", "# #[") for line in lines)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_COMMAND_START = re.compile(r"^(\s*)::")


def _print(text: str, *, stream: TextIO | None = None, command: bool = False) -> None:
    """Print a line (untrusted text neutralised), or one of lockstep's own workflow commands."""
    text = _clean(text)
    print(text if command else neutralise(text), file=stream or sys.stdout, flush=True)


def run_url() -> str:
    """The URL of the running workflow run (its logs and job summary), or "" outside Actions."""
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    repository = os.environ.get("GITHUB_REPOSITORY")
    run_id = os.environ.get("GITHUB_RUN_ID")
    return f"{server}/{repository}/actions/runs/{run_id}" if repository and run_id else ""


# --- inputs -------------------------------------------------------------------------------------


def env_name(name: str) -> str:
    """`working-directory` -> `INPUT_WORKING_DIRECTORY` (the runner's own mapping, dashes kept
    by the runner for JavaScript actions; composite actions map inputs to env explicitly, and we
    accept both spellings)."""
    return "INPUT_" + name.upper().replace(" ", "_")


def get_input(name: str, default: str = "") -> str:
    """Read an input by its kebab-case name from `INPUT_NAME` (dashes as dashes or underscores).

    Values are stripped; an empty value means "not given" and yields the default.
    """
    candidates = (env_name(name), env_name(name).replace("-", "_"))
    for key in candidates:
        value = os.environ.get(key)
        if value is not None and value.strip() != "":
            return value.strip()
    return default


def get_bool_input(name: str, default: bool = False) -> bool:
    raw = get_input(name, "")
    if raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    from .errors import InputError

    raise InputError(
        f"input '{name}' must be true or false, got {raw!r}",
        hint=f"set `{name}: true` or `{name}: false` in the `with:` block",
    )


# --- workflow commands --------------------------------------------------------------------------


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **props: object) -> None:
    """Print a workflow command (`::name key=value,...::message`) to stdout."""
    rendered = ",".join(
        f"{key}={_escape_property(str(value))}" for key, value in props.items() if value is not None
    )
    head = f"::{name} {rendered}" if rendered else f"::{name}"
    _print(f"{head}::{_escape_data(message)}", command=True)


def _annotate(kind: str, message: str, file: str | None, line: int | None, title: str | None) -> None:
    if in_actions():
        command(kind, message, title=title, file=file, line=line)
    else:
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        _print(f"{kind}: {where}{message}", stream=sys.stderr)


def error(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("error", message, file, line, title)


def warning(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("warning", message, file, line, title)


def mask(value: str) -> None:
    """Ask the runner to mask a secret value in the log (each line separately)."""
    if not in_actions():
        return
    for line in value.splitlines():
        if line.strip():
            command("add-mask", line)


def info(message: str) -> None:
    _print(message)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    if in_actions():
        _print(f"::group::{_escape_data(title)}", command=True)
    else:
        _print(f"== {title}")
    try:
        yield
    finally:
        if in_actions():
            print("::endgroup::", flush=True)


# --- outputs and summary ------------------------------------------------------------------------


@contextlib.contextmanager
def commands_paused() -> Iterator[None]:
    """While the project's own code prints to the log, GitHub ignores workflow commands in it
    (`::stop-commands::`), so its output cannot forge annotations, masks or outputs."""
    if not in_actions():
        yield
        return
    token = secrets.token_hex(16)
    _print(f"::stop-commands::{token}", command=True)
    try:
        yield
    finally:
        sys.stdout.flush()
        _print(f"::{token}::", command=True)


def _append(path_var: str, text: str) -> bool:
    path = os.environ.get(path_var)
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(_clean(text))
    return True


def set_output(name: str, value: object) -> None:
    """Write a step output. Multi-line values use a random heredoc delimiter that cannot occur in
    the value, so a value cannot forge other outputs."""
    text = "" if value is None else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if "\n" in text or "\r" in text:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in text:  # pragma: no cover - 128 random bits
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        record = f"{name}<<{delimiter}\n{text}\n{delimiter}\n"
    else:
        record = f"{name}={text}\n"
    if not _append("GITHUB_OUTPUT", record):
        _print(f"output {name}={text if len(text) < 200 else text[:200] + '...'}")


def one_line(text: str, limit: int = 1000) -> str:
    """Untrusted text as one printable line (for an output a workflow may show or compare)."""
    value = " ".join("".join(ch if ch.isprintable() else " " for ch in _clean(str(text))).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def set_outputs(values: dict[str, object]) -> None:
    for name, value in values.items():
        set_output(name, value)


def add_summary(markdown: str) -> None:
    """Append Markdown to the job summary (no-op outside Actions)."""
    if not markdown.endswith("\n"):
        markdown += "\n"
    _append("GITHUB_STEP_SUMMARY", markdown)
