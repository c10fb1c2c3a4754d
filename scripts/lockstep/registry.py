"""What lockstep keeps on registered versions besides the lineage tags, and the registry commands
built on it: the model card, the alias history, approved promotion and digest verification.
MLflow is reached through tracking.Tracker only, GitHub (who approved a promotion) through github.py."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, gha, history, lineage, modelcard, provenance, tracking
from .errors import ChecksFailed, GitHubError, InputError, MlflowError
from .metrics import GateResult, check_gates

# --- metrics and gates from version tags --------------------------------------------------------


def tagged_metrics(tags: Mapping[str, str] | None, names) -> dict[str, Any]:
    """The metrics a version carries as `lockstep.metric.<name>` tags, for the given names."""
    from .tracking import safe_name

    found: dict[str, Any] = {}
    for name in names:
        value = (tags or {}).get(lineage.METRIC_PREFIX + safe_name(name))
        if value is None:
            continue
        try:
            found[name] = float(value)
        except ValueError:
            found[name] = value
    return found


def version_metrics(tags: Mapping[str, str] | None) -> dict[str, Any]:
    """Every metric a version carries as tags (names as MLflow holds them)."""
    names = [key[len(lineage.METRIC_PREFIX):] for key in (tags or {}) if key.startswith(lineage.METRIC_PREFIX)]
    return tagged_metrics(tags, names)


# --- alias history ------------------------------------------------------------------------------


def record_move(tracker, model: str, alias: str, version: str, previous: str | None, by: str, **fields: Any) -> history.Move:
    entry = history.move(alias, version, previous, by, **fields)
    tracker.set_version_tags(model, str(version), {entry.key: entry.value()})
    return entry


def read_history(tracker, model: str, alias: str | None = None) -> list[history.Move]:
    return history.collect(((str(v.version), dict(v.tags or {})) for v in tracker.versions(model)), alias)


def history_section(tracker, model: str, aliases: list[str]) -> str:
    """A summary section for the given aliases; '' when MLflow cannot be read (a summary is no
    reason to fail a job that already did its work)."""
    try:
        moves = [m for m in read_history(tracker, model) if m.alias in aliases]
    except MlflowError as exc:
        gha.warning(f"the alias history could not be read: {exc.message}")
        return ""
    return history.render_markdown(model, moves)


# --- the model card of a rebuild ----------------------------------------------------------------

_PR = (re.compile(r"^Merge pull request #(\d+)\b"), re.compile(r"\(#(\d+)\)\s*$"))


def pr_number(subject: str) -> str:
    """The PR a merge commit came from, from GitHub's own subjects: `Merge pull request #12 from
    ...` (merge) or `Title (#12)` (squash). '' when it cannot be told."""
    for pattern in _PR:
        if match := pattern.search(subject or ""):
            return match.group(1)
    return ""


@dataclass
class CardInputs:
    model: str
    version: str
    alias: str
    previous: Any  # the MLflow version the alias pointed to before (None: none)
    promote_to: str
    promoted: bool | None
    repository: str
    project: str
    lock_commit: str
    start_commit: str
    start_subject: str
    lock_sha256: str
    model_path: str
    model_md5: str
    model_sha256: str
    stages: list[str]
    trigger: str
    reason: str
    actor: str
    workflow_run_url: str
    mlflow_run_id: str
    metrics: Mapping[str, Any]
    gates: tuple = ()
    evaluation_stages: list[str] = field(default_factory=list)
    inputs: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    evaluation_data: Mapping[str, str] = field(default_factory=dict)
    promotion_note: str = ""  # why the version was not promoted although its gates passed


def card_of(given: CardInputs) -> modelcard.Card:
    previous_tags = dict(given.previous.tags or {}) if given.previous is not None else {}
    previous_version = str(given.previous.version) if given.previous is not None else ""
    if previous_version == str(given.version):  # a re-run that found its version already registered
        previous_version, previous_tags = "", {}
    before = tagged_metrics(previous_tags, given.metrics) if previous_version else {}
    gates: list[GateResult] = check_gates(given.gates, given.metrics, before)
    return modelcard.Card(
        model=given.model, version=str(given.version), alias=given.alias, lockstep_version=__version__,
        previous_version=previous_version, promote_to=given.promote_to or "", promoted=given.promoted,
        promotion_note=given.promotion_note,
        repository=given.repository, project=given.project, lock_commit=given.lock_commit,
        start_commit=given.start_commit, pr_number=pr_number(given.start_subject), lock_sha256=given.lock_sha256,
        model_path=given.model_path, model_md5=given.model_md5, model_sha256=given.model_sha256, stages=given.stages,
        trigger=given.trigger, reason=given.reason, actor=given.actor, workflow_run_url=given.workflow_run_url,
        mlflow_run_id=given.mlflow_run_id, created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        params=given.params, metrics=given.metrics, previous_metrics=before, gates=gates, inputs=given.inputs,
        evaluation_stages=given.evaluation_stages, evaluation_data=given.evaluation_data,
    )


def publish_card(tracker, card: modelcard.Card) -> str:
    """The card as the version's description and the run's `model_card.md`; returns its Markdown."""
    text = modelcard.render(card)
    tracker.set_description(card.model, card.version, modelcard.description(card))
    if card.mlflow_run_id:
        with tempfile.TemporaryDirectory(prefix="lockstep-card-") as folder:
            path = Path(folder) / "model_card.md"
            path.write_text(text, encoding="utf-8")
            tracker.log_files(card.mlflow_run_id, [path])
    return text


# --- who approved a promotion ---------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    """Who approved the promotion's GitHub Environment in this workflow run, and what they said;
    or, with no reviewer, why it is not known. Only a record: GitHub itself held the job until the
    environment's rules passed, so an approval that cannot be read never stops the promotion."""

    environment: str
    reviewers: tuple[tuple[str, str], ...] = ()  # (login, comment), in the order GitHub lists them
    problem: str = ""

    @property
    def logins(self) -> str:
        return ", ".join(dict.fromkeys(login for login, _comment in self.reviewers))

    def text(self) -> str:
        """One line: `approved by dana: looks good`, or `approval not recorded: <why>`."""
        if self.reviewers:
            return "approved by " + "; ".join(f"{login}: {comment}" if comment else login for login, comment in self.reviewers)
        return f"approval not recorded: {self.problem}"

    def markdown(self) -> str:
        """text() for a summary: the logins and comments (anyone's text) inert."""
        from .report import inert

        if not self.reviewers:
            return f"⚠️ approval not recorded: {inert(self.problem, 600)}"
        return "✅ approved by " + "; ".join(
            f"{inert(login)}: {inert(comment, 300)}" if comment else inert(login) for login, comment in self.reviewers)


_WITHOUT_CREDENTIAL = "no GitHub token was given (the promote job passes `github.token`; it needs `permissions: actions: read`)"


def approval_of_run(environment: str, repository: str, run_id: str, token: str, api_url: str | None = None) -> Approval | None:
    """Read the run's review history (GET .../actions/runs/{run_id}/approvals) for `environment`.
    None when there is nothing to look up: no environment, or not inside a workflow run."""
    if not environment or not repository or not run_id:
        return None
    if not token:
        return Approval(environment, problem=_WITHOUT_CREDENTIAL)
    from . import github

    try:
        reviews = github.GitHub(token, api_url, max_retries=2).run_reviews(repository, run_id)
    except (GitHubError, ValueError) as exc:  # ValueError: an answer that is not JSON
        why = exc.message if isinstance(exc, GitHubError) else f"GitHub's answer was not JSON ({exc})"
        if ": 403 " in why or ": 404 " in why:
            why += " (grant the promote job `permissions: actions: read`)"
        return Approval(environment, problem=why)
    return approval_from(environment, reviews)


def approval_from(environment: str, reviews: list[dict[str, Any]]) -> Approval:
    """The approvals of `environment` among a run's reviews (GitHub's environment names ignore case)."""
    found: list[tuple[str, str]] = []
    for review in reviews:
        names = {str(env.get("name") or "").lower() for env in review.get("environments") or [] if isinstance(env, dict)}
        if review.get("state") != "approved" or environment.lower() not in names:
            continue
        user = review.get("user")
        login = history.one_line(str(user.get("login") or "") if isinstance(user, dict) else "", 100) or "unknown"
        entry = (login, history.one_line(review.get("comment") or "", 300))
        if entry not in found:
            found.append(entry)
    if not found:
        return Approval(environment, problem=(f"the run's review history holds no approval of environment '{environment}' "
                                              "(an environment without required reviewers passes without one)"))
    return Approval(environment, tuple(found))


# --- what an alias serves -------------------------------------------------------------------------

LOGGED_MODEL, RAW_FILE = "logged-model", "file"  # the values of tracking.MODEL_SOURCE


def model_source(version) -> str:
    """What a registered version holds: `logged-model` (an MLflow model), `file` (the model file as
    it is), or '' when it does not say (registered by a lockstep before the tag, or not by lockstep)."""
    value = dict(getattr(version, "tags", None) or {}).get(tracking.MODEL_SOURCE, "")
    return value if value in (LOGGED_MODEL, RAW_FILE) else ""


def log_model_hint(artifact: str) -> str:
    """How the training code logs a loadable model into the rebuild's run."""
    return (f"`mlflow.<flavor>.log_model(model, name='{artifact or 'model'}')` inside "
            "`mlflow.start_run(run_id=os.environ['LOCKSTEP_MLFLOW_RUN_ID'])`; a model the code logs into a run of its "
            "own (autolog, its own `start_run`) is not the one registered")


def file_after_model(model: str, alias: str, holder, chosen) -> str:
    """Why moving `alias` from `holder` to `chosen` would make it serve the raw model file where it
    served an MLflow model: consumers of `models:/<model>@<alias>` would stop loading. '' when it
    would not (file to file, model to model, file to model, a first move, or a version that does
    not say what it holds)."""
    if holder is None or str(holder.version) == str(chosen.version):
        return ""
    if model_source(holder) != LOGGED_MODEL or model_source(chosen) != RAW_FILE:
        return ""
    return (f"{model}@{alias} serves version {holder.version}, an MLflow model ({tracking.MODEL_SOURCE}: "
            f"{LOGGED_MODEL}); version {chosen.version} is the model file as it is ({tracking.MODEL_SOURCE}: "
            f"{RAW_FILE}), which `mlflow.pyfunc.load_model('models:/{model}@{alias}')` cannot load")


def source_not_known(model: str, alias: str, holder, chosen) -> str:
    """A note when file_after_model could not tell: one of the two versions does not say what it
    holds (an older lockstep registered it) and the other leaves a downgrade possible. ''
    otherwise, also when neither says (a registry of older versions only: nothing to compare)."""
    if holder is None or str(holder.version) == str(chosen.version):
        return ""
    before, after = model_source(holder), model_source(chosen)
    if (before, after) not in (("", RAW_FILE), (LOGGED_MODEL, "")):
        return ""
    unknown = holder if not before else chosen
    return (f"{model}@{alias}: version {unknown.version} does not say whether it holds an MLflow model "
            f"(no {tracking.MODEL_SOURCE} tag: an older lockstep registered it), so moving the alias from version "
            f"{holder.version} to {chosen.version} was not checked for a raw file replacing an MLflow model")


# --- promotion ----------------------------------------------------------------------------------


@dataclass
class Promotion:
    model: str
    alias: str
    version: str
    previous: str
    promoted: bool
    gates: list[GateResult]
    lock_commit: str
    approval: Approval | None = None


def promote(tracker, *, model: str, version: str | None, source_alias: str, target_alias: str, gates,
            actor: str, reason: str, environment: str = "", run_url: str = "",
            approval: Approval | None = None, allow_file_model: bool = False, artifact: str = "model") -> Promotion:
    """Move `target_alias` to `version` (default: the holder of `source_alias`) when the version
    is CI-built and passes the gates against the current holder of `target_alias`; record who,
    when, why, who approved (`approval`, when the promotion ran in an environment) and the move in
    the alias history. Raises ChecksFailed (exit 1) when a gate fails, InputError (exit 2) when the
    alias would serve the raw model file where it served an MLflow model (unless
    `allow_file_model`); nothing is written to the registry then."""
    if not target_alias:
        raise InputError("no alias to promote to", hint="set registry.promote-to in lockstep.yaml or pass --to")
    if version:
        try:
            chosen = tracker.get_version(model, version)
        except MlflowError:
            raise InputError(f"{model}: version {version} does not exist", hint="pass a version the rebuild registered") from None
    else:
        chosen = tracker.version_by_alias(model, source_alias)
        if chosen is None:
            raise InputError(f"{model}: alias '{source_alias}' is not set, so there is nothing to promote",
                             hint="run a main rebuild first, or pass --version")
    version = str(chosen.version)
    tags = dict(chosen.tags or {})
    missing = [tag for tag in lineage.REQUIRED if not tags.get(tag)]
    if missing:
        raise InputError(
            f"{model} version {version} has no lockstep lineage ({', '.join(missing)} missing): it was not built by CI",
            hint="promote only versions registered by a lockstep main rebuild",
        )
    holder = tracker.version_by_alias(model, target_alias)
    previous = str(holder.version) if holder is not None else ""
    metrics = version_metrics(tags)
    names = {*metrics, *(g.metric for g in gates)}
    base = tagged_metrics(holder.tags or {}, names) if holder is not None and previous != version else {}
    # a gate's metric name as lockstep.yaml spells it; the tags hold MLflow-safe names
    named = {g.metric: metrics.get(g.metric, tagged_metrics(tags, [g.metric]).get(g.metric)) for g in gates}
    results = check_gates(gates, {**metrics, **{k: v for k, v in named.items() if v is not None}}, base)
    result = Promotion(model, target_alias, version, previous, False, results, tags.get(lineage.LOCK_COMMIT, ""), approval)
    if previous == version:
        result.promoted = True
        return result
    downgrade = file_after_model(model, target_alias, holder, chosen)
    if downgrade and not allow_file_model:
        raise InputError(
            f"{downgrade}: version {version} was not promoted to '{target_alias}'",
            hint=(f"'{target_alias}' did not move. Have the training code log the model into the rebuild's run, "
                  f"{log_model_hint(artifact)}, and promote the version the next rebuild registers. If the consumers "
                  f"of '{target_alias}' load the file rather than an MLflow model, promote it on purpose with "
                  f"`allow-file-model: true` (`lockstep promote --version {version} --allow-file-model true`)"),
        )
    if downgrade:
        gha.warning(f"{downgrade}; promoted all the same (allow-file-model)", title="lockstep promote: a file replaces an MLflow model")
    elif note := source_not_known(model, target_alias, holder, chosen):
        gha.info(note)
    failed = [g for g in results if not g.passed]
    if failed:
        held = f"version {previous}" if previous else "nobody"
        raise ChecksFailed(
            f"{model} version {version} was not promoted to '{target_alias}' (held by {held}): "
            + "; ".join(f"{g.metric}: {', '.join(g.reasons)}" for g in failed),
            hint=f"'{target_alias}' did not move. A later rebuild that passes the gates will be promotable.",
        )
    tracker.set_alias(model, target_alias, version)
    now = dt.datetime.now(dt.timezone.utc)
    record = {
        lineage.PROMOTED_FROM: previous,
        lineage.PROMOTION_PREFIX + "by": actor or "unknown",
        lineage.PROMOTION_PREFIX + "at": now.isoformat(timespec="seconds"),
        lineage.PROMOTION_PREFIX + "reason": history.one_line(reason),
        lineage.PROMOTION_PREFIX + "environment": environment,
        lineage.PROMOTION_PREFIX + "run": run_url,
    }
    if approval is not None:
        record[lineage.PROMOTION_PREFIX + "approved_by"] = approval.logins
        record[lineage.PROMOTION_PREFIX + "approval"] = history.one_line(approval.text())
    tracker.set_version_tags(model, version, record)
    record_move(tracker, model, target_alias, version, previous, "promotion", commit=result.lock_commit, run=run_url,
                actor=actor, reason=reason + (f" (environment {environment})" if environment else ""),
                approved_by=approval.logins if approval else "", approval=approval.text() if approval else "")
    result.promoted = True
    return result


def promotion_summary(result: Promotion) -> str:
    from .report import inert

    head = (f"moved {inert(result.model)}@{inert(result.alias)} from version {inert(result.previous or '(none)')} "
            f"to {inert(result.version)}") if result.previous != result.version else (
        f"{inert(result.model)} version {inert(result.version)} already holds {inert(result.alias)}")
    rows = ["| gate | result | why |", "| --- | --- | --- |",
            *(f"| {inert(g.metric)} | {'✅' if g.passed else '❌'} | {inert('; '.join(g.reasons)) or '-'} |" for g in result.gates)]
    approval = ""
    if result.approval is not None and result.promoted and result.previous != result.version:
        approval = result.approval.markdown() + "\n\n"
    return f"## lockstep promote\n\n{head}.\n\n{approval}" + ("\n".join(rows) + "\n" if result.gates else "")


# --- verification -------------------------------------------------------------------------------

_SPEC = re.compile(r"^(?:models:/)?(?P<name>[^@]+?)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


@dataclass
class Verification:
    model: str
    version: str
    file: str
    expected: str
    actual: str
    repository: str

    @property
    def ok(self) -> bool:
        return bool(self.expected) and self.expected == self.actual


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    match = _SPEC.match(spec.strip())
    if not match:
        raise InputError(f"--model {spec!r} is not NAME@ALIAS or NAME/VERSION",
                         hint="e.g. --model breast-cancer-classifier@champion")
    return match["name"], match["alias"], match["version"]


def verify(tracker, model_file: Path, spec: str) -> Verification:
    """Compare a model file (or folder) with the digest the registry recorded for NAME@ALIAS."""
    name, alias, version = parse_spec(spec)
    if not model_file.exists():
        raise InputError(f"{model_file}: no such file or folder", hint="pass the path of the model file to check")
    if alias:
        found = tracker.version_by_alias(name, alias)
        if found is None:
            raise InputError(f"{name}: alias '{alias}' is not set", hint="check the model name and the alias")
    else:
        try:
            found = tracker.get_version(name, version)
        except MlflowError:
            raise InputError(f"{name}: version {version} does not exist", hint="check the model name and version") from None
    tags = dict(found.tags or {})
    return Verification(name, str(found.version), str(model_file), tags.get(lineage.MODEL_SHA256, ""),
                        provenance.sha256(model_file), tags.get(lineage.REPOSITORY, ""))
