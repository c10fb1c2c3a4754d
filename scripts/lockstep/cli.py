"""`lockstep` command line. Each command reads its inputs here, in one place: a command-line
flag wins, then the action input (`INPUT_<NAME>` in the environment), then the default."""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__, gha
from .errors import EXIT_INTERNAL, EXIT_OK, ChecksFailed, InputError, LockstepError


class Inputs:
    """Flags first, then `INPUT_*` environment variables, then defaults."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace

    def get(self, name: str, default: str = "") -> str:
        value = getattr(self.namespace, name.replace("-", "_"), None)
        if value not in (None, ""):
            return str(value)
        return gha.get_input(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        value = getattr(self.namespace, name.replace("-", "_"), None)
        if value is not None and value != "":
            os.environ[gha.env_name(name)] = str(value)
        return gha.get_bool_input(name, default)

    def path(self, name: str, default: str = ".") -> Path:
        return Path(self.get(name, default))

    def words(self, name: str) -> list[str]:
        return [w for w in self.get(name).replace(",", " ").split() if w]

    def sha(self, name: str) -> str:
        """A commit SHA input: empty, or 40 (SHA-1) or 64 (SHA-256) hex digits, lower-cased.
        Anything else is refused before it reaches git (`--upload-pack=...` is not a revision)."""
        value = self.get(name)
        if value and not _SHA.fullmatch(value):
            raise InputError(
                f"input '{name}' must be a full commit SHA (40 or 64 hex digits), got {_quote(value)}",
                hint=f"pass the full SHA, e.g. `{name}: ${{{{ github.event.pull_request.{name.split('-')[0]}.sha }}}}`",
            )
        return value.lower()


_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")


def _quote(value: str, limit: int = 60) -> str:
    """An input value for a one-line message: printable, shortened, quoted."""
    text = "".join(ch if ch.isprintable() else "?" for ch in value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _price(value: str) -> float | None:
    """The `runner-price-per-minute` input: empty, or a number from 0 (e.g. 0.008)."""
    import math

    if not value.strip():
        return None
    try:
        price = float(value.strip())
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or not 0 <= price <= 1_000_000:
        raise InputError(
            f"input 'runner-price-per-minute' must be a number from 0 (the price of one runner minute), got {_quote(value)}",
            hint="e.g. `runner-price-per-minute: 0.008` for GitHub's standard Linux runner in USD, or leave it empty",
        )
    return price


def _default_report_dir(project: Path) -> str:
    runner_temp = os.environ.get("RUNNER_TEMP")
    if runner_temp:
        label = str(project).strip("/").replace("/", "_") or "root"
        return str(Path(runner_temp) / "lockstep-report" / label)
    return ".lockstep"


# --- commands -----------------------------------------------------------------------------------


def cmd_validate(inputs: Inputs) -> int:
    from . import validate

    project = inputs.path("working-directory")
    args = validate.ValidateInputs(
        project_dir=project,
        config_path=inputs.get("config"),
        base_sha=inputs.sha("base-sha"),
        head_sha=inputs.sha("head-sha"),
        pr_number=inputs.get("pr-number"),
        repository=inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", "")),
        test_command=inputs.get("test-command"),
        experiment=inputs.get("mlflow-experiment"),
        report_dir=Path(inputs.get("report-dir", _default_report_dir(project))).absolute(),
        workflow_run_url=inputs.get("workflow-run-url", gha.run_url()),
        runner_price_per_minute=_price(inputs.get("runner-price-per-minute")),
    )
    result = validate.run(args)
    rep = result.report
    gha.add_summary(result.report_path.read_text("utf-8"))
    gha.set_outputs(
        {
            "passed": rep.passed,
            "report-path": result.report_path,
            "results-path": result.results_path,
            "report-dir": result.report_path.parent,
            "mlflow-run-id": rep.mlflow_run_id,
        }
    )
    for check in rep.checks:
        icon = {"pass": "ok  ", "fail": "FAIL", "skip": "skip", "warn": "warn"}[check.status]
        gha.info(f"[{icon}] {check.title}: {check.summary}")
    for check in rep.checks:  # what asks for a review is an annotation too, on a passing run
        if check.status == "warn":
            gha.warning(check.summary, title=f"lockstep: {check.title}")
    if not rep.passed:
        failed = rep.failed()
        for check in failed:
            gha.error(check.summary, title=f"lockstep: {check.title}")
        raise ChecksFailed(f"{len(failed)} check(s) failed: {', '.join(c.title for c in failed)}")
    return EXIT_OK


def cmd_rebuild(inputs: Inputs) -> int:
    from . import gitrepo, rebuild
    from .dispatch import parse_payload

    # the push token: masked, and out of the environment before DVC or a training stage starts
    token = gitrepo.take_push_token()
    if token:
        gha.mask(token)
        gha.mask(gitrepo.basic_auth(token))

    # a repository_dispatch client_payload: its keys take the place of the inputs of the same name
    payload = parse_payload(inputs.get("dispatch-payload"))
    args = rebuild.RebuildInputs(
        project_dir=inputs.path("working-directory"),
        config_path=inputs.get("config"),
        stages=inputs.words("stages") if payload.stages is None else payload.stages,
        force_all=inputs.flag("force-all") if payload.force_all is None else payload.force_all,
        set_params=([line.strip() for line in inputs.get("set-params").replace(",", "\n").splitlines() if line.strip()]
                    if payload.set_params is None else payload.set_params),
        reason=inputs.get("reason") if payload.reason is None else payload.reason,
        trigger=inputs.get("trigger", os.environ.get("GITHUB_EVENT_NAME", "manual")),
        actor=inputs.get("actor", os.environ.get("GITHUB_ACTOR", "")),
        branch=inputs.get("branch", os.environ.get("GITHUB_REF_NAME", "main")),
        repository=inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", "")),
        experiment=inputs.get("mlflow-experiment"),
        push=inputs.flag("push", True),
        register=inputs.flag("register", True),
        register_unchanged=inputs.flag("register-unchanged", False),
        workflow_run_url=inputs.get("workflow-run-url", gha.run_url()),
        promote=inputs.flag("promote", True),
    )
    result = rebuild.run(args)
    gha.set_outputs(result.outputs())
    rows = "\n".join(f"| {k} | `{v}` |" for k, v in result.outputs().items() if v not in ("", None))
    gha.add_summary(f"## lockstep main rebuild\n\n{_rebuild_note(result)}| output | value |\n| --- | --- |\n{rows}\n")
    if result.card:
        gha.add_summary(f"<details><summary>Model card of version {result.model_version}</summary>\n\n"
                        f"{result.card}\n</details>\n")
    if result.history:
        gha.add_summary(result.history)
    return EXIT_OK


def _rebuild_note(result) -> str:
    """The sentence above the rebuild's table: what changed, or since when nothing did."""
    if result.unchanged_since:
        commit = re.sub(r"[^0-9a-f]", "", result.unchanged_commit.lower())[:12] or "unknown"
        version = re.sub(r"[^0-9]", "", result.unchanged_since)
        if result.committed:
            return (f"Model unchanged since v{version} (commit `{commit}`): the lock commit records the new "
                    "pipeline state; no version was registered.\n\n")
        return f"Data unchanged since v{version} (commit `{commit}`): nothing was committed and no version was registered.\n\n"
    if result.changed_outputs:
        from .report import inert

        names = ", ".join(f"{inert(c.path, 200)} ({c.change})" for c in result.changed_outputs[:20])
        more = f" and {len(result.changed_outputs) - 20} more" if len(result.changed_outputs) > 20 else ""
        return f"Changed outputs: {names}{more}.\n\n"
    return ""


def cmd_comment(inputs: Inputs) -> int:
    from . import comment
    from .errors import ArtifactError
    from .github import GitHub

    repository = inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", ""))
    if not repository or "/" not in repository:
        raise InputError("the repository is unknown", hint="set `repository` (owner/name) or run inside GitHub Actions")
    token = inputs.get("github-token", os.environ.get("GITHUB_TOKEN", ""))
    gha.mask(token)
    github = GitHub(token)
    report_dir = inputs.path("report-dir", "")
    if inputs.flag("from-artifact"):
        head_sha = inputs.sha("head-sha")
        if not head_sha:
            raise InputError("`head-sha` is required with from-artifact", hint="pass github.event.workflow_run.head_sha")
        rep = comment.load_artifact(
            report_dir,
            server_url=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
            repository=repository,
            run_conclusion=inputs.get("run-conclusion"),
        )
        pr_number = comment.pr_for_head(github, repository, head_sha, inputs.get("head-owner"), inputs.get("head-branch"))
        if rep.pr_number and rep.pr_number != str(pr_number):
            raise ArtifactError(
                f"the artifact says PR #{rep.pr_number} but the head {head_sha[:12]} belongs to PR #{pr_number}",
                hint="the artifact was tampered with; not posted",
            )
        if rep.head_sha and rep.head_sha != head_sha:
            raise ArtifactError(
                f"the artifact was produced for {rep.head_sha[:12]}, not the workflow run's head {head_sha[:12]}",
                hint="not posted",
            )
    else:
        results = report_dir / "results.json"
        if not results.is_file():
            raise InputError(f"{results}: no validation results to post", hint="run `lockstep validate` first; pass its report-dir")
        rep = comment.load_results(results)
        pr_number = int(inputs.get("pr-number") or rep.pr_number or 0)
        if not pr_number:
            raise InputError("no PR number", hint="pass `pr-number: ${{ github.event.pull_request.number }}`")
    author = inputs.get("comment-author", comment.DEFAULT_COMMENT_AUTHOR)
    posted = comment.post(github, repository, pr_number, rep, summary_url=gha.run_url(), author=author)
    gha.set_outputs({"comment-id": posted.comment_id, "created": posted.created, "pr-number": pr_number})
    if posted.author and posted.author.lower() != author.lower():
        gha.warning(
            f"the comment was written as {posted.author!r}, not {author!r}: the next run will not recognise it "
            f"as lockstep's and will add another comment. Set `comment-author: {posted.author}` for this token.",
            title="lockstep comment: set comment-author",
        )
    gha.info(f"{'created' if posted.created else 'updated'} comment {posted.comment_id} on PR #{pr_number} ({posted.length} characters)")
    return EXIT_OK


def cmd_rollback(inputs: Inputs) -> int:
    from . import config as configmod, rollback, tracking

    model = inputs.get("model")
    if not model:
        cfg = configmod.load(inputs.path("working-directory"), inputs.get("config") or None)
        model = cfg.model_name or ""
    if not model:
        raise InputError("no model name", hint="pass `model:` or set model.name in lockstep.yaml")
    tracker = tracking.Tracker()
    result = rollback.rollback(
        tracker,
        model,
        inputs.get("alias", "champion"),
        inputs.get("version") or None,
        actor=inputs.get("actor", os.environ.get("GITHUB_ACTOR", "")),
        reason=inputs.get("reason"),
        run_url=inputs.get("workflow-run-url", gha.run_url()),
    )
    gha.set_outputs({"model-name": result.model, "model-version": result.version, "alias": result.alias,
                     "previous-version": result.previous or "", "lock-commit": result.lock_commit})
    message = (
        f"moved {result.model}@{result.alias} from version {result.previous or '(none)'} to {result.version}. "
        f"Restore its exact code, data and model with: {result.restore}"
    )
    gha.info(message)
    from .registry import history_section
    from .report import inert

    warning = ""
    if result.file_after_model:
        # a person chose this version: it moves, and what it breaks is said where they look
        warning = (f"{result.file_after_model}. The rollback was made as asked; consumers that load "
                   f"`models:/{result.model}@{result.alias}` with `mlflow.pyfunc.load_model` fail until the alias holds "
                   "an MLflow model again (roll forward, or promote a version whose lockstep.model_source is logged-model)")
        gha.warning(warning, title="lockstep rollback: a file replaces an MLflow model")
        warning = f"⚠️ {inert(warning, 2000)}\n\n"
    gha.add_summary(f"## lockstep rollback\n\n{inert(message, 2000)}\n\n{warning}"
                    f"{history_section(tracker, model, [result.alias])}")
    return EXIT_OK


def _model_of(inputs: Inputs):
    """The registered model's name (the input, else model.name of lockstep.yaml) and the config."""
    from . import config as configmod

    cfg = configmod.load(inputs.path("working-directory"), inputs.get("config") or None)
    model = inputs.get("model") or cfg.model_name or ""
    if not model:
        raise InputError("no model name", hint="pass `--model NAME` or set model.name in lockstep.yaml")
    return model, cfg


def cmd_promote(inputs: Inputs) -> int:
    from . import registry, tracking

    model, cfg = _model_of(inputs)
    tracker = tracking.Tracker()
    environment = inputs.get("environment")
    token = inputs.get("github-token", os.environ.get("GITHUB_TOKEN", ""))
    gha.mask(token)
    # who approved the environment: a record only (GitHub held this job until they did), so a
    # token without `actions: read` or an API failure is a warning and the promotion goes on
    approval = registry.approval_of_run(environment, inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", "")),
                                        inputs.get("run-id", os.environ.get("GITHUB_RUN_ID", "")), token)
    if approval is not None and not approval.reviewers:
        gha.warning(f"who approved this promotion is not recorded: {approval.problem}", title="lockstep promote: approval not recorded")
    result = registry.promote(
        tracker,
        model=model,
        version=inputs.get("version") or None,
        source_alias=inputs.get("from", cfg.alias),
        target_alias=inputs.get("to", cfg.promote_to or ""),
        gates=cfg.gates,
        actor=inputs.get("actor", os.environ.get("GITHUB_ACTOR", "")),
        reason=inputs.get("reason"),
        environment=environment,
        run_url=inputs.get("workflow-run-url", gha.run_url()),
        approval=approval,
        allow_file_model=inputs.flag("allow-file-model"),
        artifact=cfg.model_artifact,
    )
    gha.set_outputs({"promoted": result.promoted, "model-name": result.model, "model-version": result.version,
                     "alias": result.alias, "previous-version": result.previous, "lock-commit": result.lock_commit,
                     "approved-by": approval.logins if approval else ""})
    gha.info(f"{result.model}@{result.alias}: version {result.previous or '(none)'} -> {result.version}"
             + (f"; {approval.text()}" if approval else ""))
    gha.add_summary(registry.promotion_summary(result) + "\n" + registry.history_section(tracker, model, [result.alias]))
    return EXIT_OK


def cmd_history(inputs: Inputs) -> int:
    from . import history, registry, tracking

    model = inputs.get("model")
    if not model:
        model, _cfg = _model_of(inputs)
    alias = inputs.get("alias") or None
    moves = registry.read_history(tracking.Tracker(), model, alias)
    gha.info(history.render_text(model, moves))
    gha.add_summary(history.render_markdown(model, moves))
    gha.set_outputs({"moves": len(moves)})
    return EXIT_OK


def cmd_verify(inputs: Inputs) -> int:
    from . import provenance, registry, tracking

    spec = inputs.get("model")
    if not spec:
        raise InputError("which version to check against?", hint="pass --model NAME@ALIAS (or NAME/VERSION)")
    model_file = inputs.get("model-file")
    if not model_file:
        raise InputError("no model file given", hint="lockstep verify MODEL_FILE --model NAME@ALIAS")
    check = registry.verify(tracking.Tracker(), Path(model_file), spec)
    gha.set_outputs({"verified": check.ok, "expected-sha256": check.expected, "actual-sha256": check.actual,
                     "model-version": check.version})
    where = f"{check.model} version {check.version} ({spec})"
    if not check.expected:
        raise ChecksFailed(f"{where} carries no lockstep.model_sha256 tag: it was registered before lockstep 0.2.0 "
                           f"or not by a lockstep rebuild, so {model_file} cannot be checked against it",
                           hint="rebuild the model with lockstep >= 0.2.0, or compare lockstep.model_md5 with `md5sum`")
    if not check.ok:
        raise ChecksFailed(f"{model_file} does not match {where}: its SHA-256 is {check.actual}, the registry "
                           f"recorded {check.expected}",
                           hint="this file is not the model CI built for that version; do not deploy it")
    gha.info(f"{model_file} matches {where}: sha256 {check.actual}")
    if Path(model_file).is_file():
        gha.info("to check where it was built, verify its build provenance attestation (GitHub CLI):")
        gha.info(f"  {provenance.gh_verify_command(model_file, check.repository)}")
    else:
        gha.info("a folder has no file attestation: its digest is over the manifest (README, Build provenance)")
    return EXIT_OK


def cmd_check_config(inputs: Inputs) -> int:
    from . import config as configmod

    cfg = configmod.load(inputs.path("working-directory"), inputs.get("config") or None, required=True)
    gha.info(f"{cfg.source}: valid ({len(cfg.gates)} gate(s))")
    return EXIT_OK


def cmd_verify_remote(inputs: Inputs) -> int:
    from . import dvcrepo

    repo = dvcrepo.open_repo(inputs.path("working-directory"))
    check = dvcrepo.verify_remote(repo)
    gha.set_outputs({"checked": check.checked, "missing": len(check.missing)})
    if check.ok:
        gha.info(check.summary())
        return EXIT_OK
    for output, files in check.missing_outputs().items():
        gha.info(f"missing from {check.remote}: {output}: {', '.join(files)}")
    raise ChecksFailed(
        f"{len(check.missing)} object(s) referenced by dvc.lock are missing from {check.remote}",
    )


def cmd_dispatch(inputs: Inputs) -> int:
    from . import dispatch
    from .github import GitHub

    token = os.environ.get("LOCKSTEP_DISPATCH_TOKEN") or os.environ.get("GITHUB_TOKEN", "")
    gha.mask(token)
    try:
        timeout = float(inputs.get("timeout", "3600"))
        poll_interval = float(inputs.get("poll-interval", "10"))
    except ValueError:
        raise InputError("--timeout and --poll-interval take a number of seconds") from None
    args = dispatch.DispatchArgs(
        repository=inputs.get("repository"),
        workflow=inputs.get("workflow"),
        ref=inputs.get("ref", "main"),
        stages=inputs.words("stages"),
        force_all=inputs.flag("force-all"),
        set_params=[line.strip() for line in inputs.get("set-params").replace(",", "\n").splitlines() if line.strip()],
        reason=inputs.get("reason"),
        wait=inputs.flag("wait"),
        timeout=timeout,
        poll_interval=poll_interval,
    )
    dispatch.check_args(args)
    if not token:
        raise InputError("no GitHub token: set LOCKSTEP_DISPATCH_TOKEN (or GITHUB_TOKEN)",
                         hint="a fine-grained token with only the repository permission Actions: write")
    result = dispatch.dispatch(GitHub(token), args, log=gha.info)
    gha.set_outputs({"run-id": result.run_id, "run-url": result.html_url, "conclusion": result.conclusion})
    return EXIT_OK


def cmd_init(inputs: Inputs) -> int:
    from . import adopt

    written = adopt.write(
        inputs.path("working-directory"),
        library=inputs.get("library", adopt.DEFAULT_LIBRARY),
        repository=inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", "")),
        force=inputs.flag("force"),
    )
    gha.info(adopt.summary(written))
    return EXIT_OK


def cmd_demo(inputs: Inputs) -> int:
    from . import demo

    return demo.main(Path(inputs.get("workdir")) if inputs.get("workdir") else None)


# --- parsing and the error boundary -------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[Inputs], int], str, Sequence[str]]] = {
    "validate": (cmd_validate, "validate a pull request's DVC artifacts and metrics",
                 ("working-directory", "config", "base-sha", "head-sha", "pr-number", "repository",
                  "test-command", "mlflow-experiment", "report-dir", "workflow-run-url", "runner-price-per-minute")),
    "rebuild": (cmd_rebuild, "retrain on main in CI, push, commit dvc.lock back, register the model",
                ("working-directory", "config", "stages", "force-all", "set-params", "reason", "trigger", "actor", "branch",
                 "repository", "mlflow-experiment", "push", "register", "register-unchanged", "workflow-run-url",
                 "dispatch-payload", "promote")),
    "comment": (cmd_comment, "post or update the PR comment from a validation report",
                ("report-dir", "pr-number", "repository", "github-token", "from-artifact", "head-sha",
                 "head-owner", "head-branch", "run-conclusion", "comment-author")),
    "rollback": (cmd_rollback, "move a serving alias back to an earlier CI-built version",
                 ("working-directory", "config", "model", "alias", "version", "reason", "actor")),
    "promote": (cmd_promote, "move the promotion alias to a CI-built version that passes the gates; record who, when, why",
                ("working-directory", "config", "model", "version", "from", "to", "reason", "actor", "environment",
                 "workflow-run-url", "github-token", "repository", "run-id", "allow-file-model")),
    "history": (cmd_history, "list which version each alias pointed to, when, from which commit and run, moved by what",
                ("working-directory", "config", "model", "alias")),
    "verify": (cmd_verify, "check a model file against the SHA-256 the registry recorded for NAME@ALIAS",
               ("model", "model-file")),
    "check-config": (cmd_check_config, "validate lockstep.yaml against its schema", ("working-directory", "config")),
    "verify-remote": (cmd_verify_remote, "check that every object of dvc.lock is in the DVC remote", ("working-directory",)),
    "dispatch": (cmd_dispatch, "start a retrain: run a workflow through GitHub's workflow_dispatch API, optionally wait for it",
                 ("repository", "workflow", "ref", "stages", "force-all", "set-params", "reason", "wait", "timeout",
                  "poll-interval")),
    "init": (cmd_init, "adopt lockstep on a DVC project: write lockstep.yaml and the consumer workflows from dvc.yaml",
             ("working-directory", "library", "repository", "force")),
    "demo": (cmd_demo, "run the whole story on a temporary copy of the example project", ("workdir",)),
}

# options that may be given without a value
SWITCHES: dict[str, tuple[str, ...]] = {"dispatch": ("force-all", "wait"), "init": ("force",)}
# an option that may also be given as the positional argument (`lockstep verify MODEL_FILE`)
POSITIONAL: dict[str, str] = {"verify": "model-file"}


# One help text per option name, shared by every command that takes it (README, "Inputs"). Each
# option can also come from the action input `INPUT_<NAME>`; `lockstep COMMAND --help` shows them.
OPTION_HELP: dict[str, str] = {
    "allow-file-model": "true: promote the model file as it is (lockstep.model_source: file) where the alias holds an MLflow model, on purpose",
    "comment-author": "login whose comments lockstep may update (default: github-actions[bot]); a marker in anyone else's comment is ignored",
    "dispatch-payload": "a repository_dispatch client_payload as JSON, validated; its keys replace stages, force-all, set-params, reason",
    "environment": "the GitHub Environment whose reviewers approved this promotion (recorded on the version, with who approved)",
    "run-id": "the workflow run whose review history names who approved the environment (default: $GITHUB_RUN_ID)",
    "force": "overwrite files that already exist (lockstep.yaml, the consumer workflows)",
    "from": "the alias whose version is promoted (default: registry.alias)",
    "to": "the alias moved to it (default: registry.promote-to)",
    "library": "where the consumer workflows call lockstep, OWNER/REPO@REF (default: lockstep-dev/lockstep@v1)",
    "model-file": "the model file (or folder) to check against the registry's digest",
    "poll-interval": "seconds between two looks at the dispatched run (with --wait)",
    "promote": "move registry.promote-to in this job when the gates pass (false: leave it to the promote job)",
    "ref": "the branch or tag the dispatched workflow runs on (default: main)",
    "register-unchanged": "register a new version even when the model is byte-identical to the one the alias points to",
    "run-conclusion": "the validation run's conclusion (workflow_run.conclusion): a passed report from a run that did not succeed is refused",
    "runner-price-per-minute": "the runner's price per minute, to show the PR's times as cost",
    "timeout": "seconds to wait for the dispatched run (with --wait); exit 10 when it is still running",
    "wait": "wait for the dispatched run to finish and exit with its outcome",
    "workflow": "the workflow file (or id) to dispatch, e.g. ml-main.yml",
    "working-directory": "the DVC project folder (default: .)",
    "config": "path of lockstep.yaml, relative to the working directory (default: lockstep.yaml)",
    "base-sha": "the pull request's base commit, to compare metrics and params with",
    "head-sha": "the pull request's head commit (default: HEAD); with --from-artifact, the workflow run's head",
    "pr-number": "the pull request number (tags the MLflow run, finds the comment)",
    "repository": "owner/name of the GitHub repository (default: $GITHUB_REPOSITORY)",
    "test-command": "the project's own test command, run before the evaluation",
    "mlflow-experiment": "MLflow experiment (default: lockstep/{repository}/{project})",
    "report-dir": "folder of report.md and results.json: written by validate, read by comment",
    "workflow-run-url": "link to the workflow run, recorded in reports and tags (default: from the Actions environment)",
    "stages": "stages to force, with everything downstream (default: the model's stage)",
    "force-all": "true: re-run every stage (new data arrived)",
    "set-params": "KEY=VALUE params to set in params.yaml, one per line or comma-separated",
    "reason": "why: recorded in the commit message, the MLflow run and the version (rollback: required)",
    "trigger": "what started the rebuild (default: $GITHUB_EVENT_NAME, else manual)",
    "actor": "who started it (default: $GITHUB_ACTOR)",
    "branch": "the branch rebuilt and pushed to (default: $GITHUB_REF_NAME, else main)",
    "push": "false: do not push to the DVC remote or commit dvc.lock back (default: true)",
    "register": "false: do not log or register the model in MLflow (default: true)",
    "github-token": "token for the GitHub REST API (default: $GITHUB_TOKEN); masked in the log",
    "from-artifact": "true: the report comes from another run's artifact (fork-safe comment path)",
    "head-owner": "owner of the pull request's head repository (finds a fork's PR)",
    "head-branch": "the pull request's head branch (finds a fork's PR)",
    "model": "registered model name (default: model.name in lockstep.yaml)",
    "alias": "the alias to move (default: champion)",
    "version": "the version to move the alias to (default: the newest CI-built version before the current one)",
    "workdir": "folder for the demo's repositories and stores (default: a new temporary folder)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockstep", description="Trustworthy CI for DVC + MLflow projects.")
    parser.add_argument("--version", action="version", version=f"lockstep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_func, help_text, options) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text,
                                 epilog="Each option can also be given as INPUT_<NAME> in the environment (an action input).")
        if name in POSITIONAL:
            command.add_argument("positional", nargs="?", default=None, metavar=POSITIONAL[name].upper().replace("-", "_"),
                                 help=OPTION_HELP.get(POSITIONAL[name]))
        for option in options:
            if option in SWITCHES.get(name, ()):  # `--force-all` alone means true
                command.add_argument(f"--{option}", dest=option.replace("-", "_"), default=None, metavar="BOOL",
                                     nargs="?", const="true", help=OPTION_HELP.get(option))
                continue
            command.add_argument(f"--{option}", dest=option.replace("-", "_"), default=None, metavar="VALUE",
                                 help=OPTION_HELP.get(option))
    return parser


def _error_summary(command: str, exc: LockstepError) -> str:
    """The job-summary section of an error. Its text can come from the repository (a key, a path,
    DVC's or git's own message): it is rendered inert, as the report is."""
    from .report import inert

    where = f" ({inert(exc.file, 200)}{':' + str(exc.line) if exc.line else ''})" if exc.file else ""
    paragraphs = [inert(line, 2000) for text in (exc.message, exc.hint) for line in text.splitlines()[:40] if line.strip()]
    return f"### ❌ lockstep {command}: {exc.title}{where}\n\n" + "\n\n".join(paragraphs) + "\n"


def entry() -> None:
    """The `lockstep` command (and `python -m lockstep`): `main`, then exit with its code. Before
    that, every object is moved out of the garbage collector's sight (`gc.freeze`): otherwise the
    interpreter's final collections walk all of DVC's, MLflow's and boto's objects, 0.25-0.4 s of
    every command's wall time here, for memory the process is about to give back. Files and
    connections are still closed as usual (atexit handlers, reference counting)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if not namespace.command:
        parser.print_help()
        return 2
    func = COMMANDS[namespace.command][0]
    if getattr(namespace, "positional", None) is not None:
        option = POSITIONAL[namespace.command].replace("-", "_")
        if getattr(namespace, option, None) not in (None, ""):
            parser.error(f"give {POSITIONAL[namespace.command].upper()} once: as the argument or as --{POSITIONAL[namespace.command]}")
        setattr(namespace, option, namespace.positional)
    try:
        return func(Inputs(namespace))
    except LockstepError as exc:
        gha.error(exc.render(), file=exc.file, line=exc.line, title=f"lockstep {namespace.command}: {exc.title}")
        gha.add_summary(_error_summary(namespace.command, exc))
        gha.set_output("error", gha.one_line(exc.message))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last boundary: a bug, said as one
        with gha.group("traceback (a bug in lockstep)"):
            gha.info(traceback.format_exc())
        gha.error(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in lockstep {__version__}; "
            "please report it with the log above.",
            title=f"lockstep {namespace.command}: internal error",
        )
        return EXIT_INTERNAL
    finally:
        _close_projects()


def _close_projects() -> None:
    """DVC projects hold git pack files open until closed: close what this command opened."""
    if "lockstep.dvcrepo" in sys.modules:  # only when the command touched DVC at all
        sys.modules["lockstep.dvcrepo"].close_all()
