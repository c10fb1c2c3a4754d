"""Retrains triggered from outside the repository.

Two directions:

- `parse_payload`: a `repository_dispatch` event's `client_payload`, handed to `lockstep rebuild`
  as one JSON string (the `dispatch-payload` input), is validated against
  `schema/dispatch-payload.schema.json` and turned into the rebuild's stages, force-all,
  set-params and reason. Its values are data: they reach the rebuild as Python values, never a
  shell.
- `dispatch`: `lockstep dispatch` asks GitHub to run a workflow (`workflow_dispatch` through the
  REST API), finds the run it started, and optionally waits for its conclusion.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import safeload
from .errors import InputError, RunFailed, WaitTimeout

SCHEMA_PATH = Path(__file__).parent / "schema" / "dispatch-payload.schema.json"
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_PAYLOAD_DEPTH = 4
REASON_MAX = 500  # the schema's reason.maxLength; the CLI applies the same limit
SCHEMA_HINT = "see scripts/lockstep/schema/dispatch-payload.schema.json (README, Retraining from outside the repository)"


# --- the repository_dispatch payload ------------------------------------------------------------


@dataclass
class RetrainRequest:
    """What a payload asks for; None where it says nothing (the input of that name applies)."""

    stages: list[str] | None = None
    force_all: bool | None = None
    set_params: list[str] | None = None
    reason: str | None = None
    keys: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text("utf-8"))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InputError(f"dispatch payload: key {key!r} appears twice", hint=SCHEMA_HINT)
        seen[key] = value
    return seen


def _where(path: list[Any]) -> str:
    return ".".join(str(p) for p in path) if path else "(the payload)"


def parse_payload(text: str) -> RetrainRequest:
    """Validate a `client_payload` given as JSON text. Empty, `null` and `{}` ask for nothing."""
    text = (text or "").strip()
    if text in ("", "null", "{}"):
        return RetrainRequest()
    size = len(text.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise InputError(f"dispatch payload: {size} bytes, more than the {MAX_PAYLOAD_BYTES} accepted", hint=SCHEMA_HINT)
    if safeload.json_depth_exceeds(text, MAX_PAYLOAD_DEPTH):
        raise InputError(f"dispatch payload: nested deeper than {MAX_PAYLOAD_DEPTH} levels", hint=SCHEMA_HINT)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise InputError(f"dispatch payload: not JSON ({exc})",
                         hint="pass `dispatch-payload: ${{ toJSON(github.event.client_payload) }}`; " + SCHEMA_HINT) from None
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        raise InputError(_explain(errors[0], data), hint=SCHEMA_HINT)
    request = RetrainRequest(keys=sorted(data))
    if "stages" in data:
        stages = data["stages"]
        request.stages = [w for w in stages.replace(",", " ").split() if w] if isinstance(stages, str) else list(stages)
    if "force-all" in data:
        request.force_all = data["force-all"]
    if "set-params" in data:
        params = data["set-params"]
        if isinstance(params, dict):
            request.set_params = [f"{key}={_scalar(value)}" for key, value in params.items()]
        else:
            request.set_params = list(params)
    if "reason" in data:
        request.reason = data["reason"]
    return request


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _explain(error: Any, data: Any) -> str:
    """One sentence naming the key, without echoing a long or hostile value."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and not path:
        unknown = sorted(set(data) - set(_schema()["properties"]))
        allowed = ", ".join(sorted(_schema()["properties"]))
        return f"dispatch payload: unknown key {unknown[0]!r} (allowed: {allowed})"
    if error.validator == "type" and not path:
        return f"dispatch payload: must be a JSON object, not {type(data).__name__}"
    key = _where(path)
    if error.validator == "maxLength":
        return f"dispatch payload: {key}: longer than {error.validator_value} characters"
    if error.validator in ("maxItems", "maxProperties"):
        return f"dispatch payload: {key}: more than {error.validator_value} entries"
    if error.validator == "type":
        return f"dispatch payload: {key}: must be {error.validator_value}, not {_json_type(error.instance)}"
    if error.validator == "anyOf":
        return f"dispatch payload: {key}: {_anyof_text(path)}"
    if error.validator == "pattern":
        return f"dispatch payload: {key}: has characters that are not allowed"
    return f"dispatch payload: {key}: invalid ({error.validator})"


def _anyof_text(path: list[Any]) -> str:
    top = str(path[0]) if path else ""
    return {
        "stages": "must be a list of stage names or one string of names",
        "set-params": "must be a list of KEY=VALUE strings or an object of KEY: value (one line each)",
    }.get(top, "has a value of the wrong shape")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# --- lockstep dispatch: workflow_dispatch through the REST API ----------------------------------

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_WORKFLOW = re.compile(r"^(?:[A-Za-z0-9_.-]+\.ya?ml|\d+)$")
_STAGE = re.compile(r"^[A-Za-z0-9_.@:/-]+$")
_PARAM = re.compile(r"^(?:[A-Za-z0-9_./-]+:)?[A-Za-z0-9_.-]+=[^\n\r]*$")  # `file:` for another params file
_REF = re.compile(r"^[A-Za-z0-9_./@+-]+$")
FINDING_TIMEOUT = 120.0  # seconds to find the run when GitHub does not return it


@dataclass
class DispatchArgs:
    repository: str
    workflow: str
    ref: str = "main"
    stages: list[str] = field(default_factory=list)
    force_all: bool = False
    set_params: list[str] = field(default_factory=list)
    reason: str = ""
    wait: bool = False
    timeout: float = 3600.0
    poll_interval: float = 10.0


@dataclass
class DispatchResult:
    run_id: int
    html_url: str
    status: str = ""
    conclusion: str = ""


def check_args(args: DispatchArgs) -> None:
    """Refuse bad input before anything is sent (exit 2, naming the input)."""
    if not _REPOSITORY.match(args.repository or ""):
        raise InputError(f"--repository {args.repository!r} is not OWNER/REPO", hint="e.g. --repository octo/ml")
    if not _WORKFLOW.match(args.workflow or ""):
        raise InputError(f"--workflow {args.workflow!r} is not a workflow file name or id",
                         hint="the file name under .github/workflows, e.g. --workflow ml-main.yml")
    if not _REF.match(args.ref or "") or ".." in args.ref:
        raise InputError(f"--ref {args.ref!r} is not a branch or tag name", hint="e.g. --ref main")
    for stage in args.stages:
        if not _STAGE.match(stage):
            raise InputError(f"--stages: {stage!r} is not a stage name", hint="names from dvc.yaml, separated by spaces or commas")
    for line in args.set_params:
        if not _PARAM.match(line):
            raise InputError(f"--set-params: {line[:80]!r} is not KEY=VALUE", hint="one KEY=VALUE per line, e.g. prepare.snapshot=2026-12-01")
    if len(args.reason) > REASON_MAX:
        raise InputError(f"--reason: {len(args.reason)} characters, more than {REASON_MAX}", hint="shorten the reason")
    if "\n" in args.reason or "\r" in args.reason:
        raise InputError("--reason: must be one line", hint="the reason becomes one line of the commit message")
    if args.timeout <= 0 or args.poll_interval <= 0:
        raise InputError("--timeout and --poll-interval must be positive numbers of seconds")


def workflow_inputs(args: DispatchArgs) -> dict[str, str]:
    """The form's inputs, only those given (a consumer form without `stages` still works)."""
    inputs: dict[str, str] = {}
    if args.stages:
        inputs["stages"] = " ".join(args.stages)
    if args.force_all:
        inputs["force-all"] = "true"
    if args.set_params:
        inputs["set-params"] = "\n".join(args.set_params)
    if args.reason:
        inputs["reason"] = args.reason
    return inputs


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dispatch(
    github: Any,
    args: DispatchArgs,
    *,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DispatchResult:
    check_args(args)
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)  # clock skew
    known = {run["id"] for run in github.workflow_runs(args.repository, args.workflow, event="workflow_dispatch",
                                                        created=f">={_iso(started)}")}
    details = github.dispatch_workflow(args.repository, args.workflow, args.ref, workflow_inputs(args))
    if details:
        result = DispatchResult(int(details["workflow_run_id"]), str(details.get("html_url", "")))
    else:
        result = _find_run(github, args, started, known, log=log, sleep=sleep, clock=clock)
    log(f"dispatched {args.workflow} on {args.ref} of {args.repository}: run {result.run_id} {result.html_url}")
    if not args.wait:
        return result
    deadline = clock() + args.timeout
    while True:
        run = github.workflow_run(args.repository, result.run_id)
        result.status, result.conclusion = run.get("status") or "", run.get("conclusion") or ""
        result.html_url = run.get("html_url") or result.html_url
        if result.status == "completed":
            break
        if clock() >= deadline:
            raise WaitTimeout(
                f"run {result.run_id} is still {result.status or 'queued'} after {args.timeout:g}s: {result.html_url}",
                hint="it keeps running on GitHub; wait longer with --timeout, or look at the run",
            )
        sleep(args.poll_interval)
    log(f"run {result.run_id} completed: {result.conclusion} {result.html_url}")
    if result.conclusion != "success":
        raise RunFailed(f"run {result.run_id} concluded {result.conclusion or 'without a conclusion'}: {result.html_url}",
                        hint="open the run for the failed step; nothing is registered by a failed rebuild")
    return result


def _find_run(github: Any, args: DispatchArgs, started: dt.datetime, known: set[int], *, log, sleep, clock) -> DispatchResult:
    """GitHub answered 204 (no run details): the new run is the one that was not listed before."""
    deadline = clock() + FINDING_TIMEOUT
    while True:
        runs = [r for r in github.workflow_runs(args.repository, args.workflow, event="workflow_dispatch",
                                                created=f">={_iso(started)}") if r["id"] not in known]
        if runs:
            run = min(runs, key=lambda r: (r.get("created_at") or "", r["id"]))
            if len(runs) > 1:
                log(f"note: {len(runs)} new runs of {args.workflow} appeared; following the earliest, {run['id']}")
            return DispatchResult(int(run["id"]), str(run.get("html_url", "")), run.get("status") or "", run.get("conclusion") or "")
        if clock() >= deadline:
            raise WaitTimeout(
                f"GitHub accepted the dispatch but no new run of {args.workflow} appeared within {FINDING_TIMEOUT:g}s",
                hint="look at the repository's Actions tab; the workflow may be disabled or queued",
            )
        sleep(min(args.poll_interval, 5.0))
