"""`lockstep` command line. Each command reads its inputs here, in one place: a command-line
flag wins, then the action input (`INPUT_<NAME>` in the environment), then the default."""

from __future__ import annotations

import argparse
import os
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
        base_sha=inputs.get("base-sha"),
        head_sha=inputs.get("head-sha"),
        pr_number=inputs.get("pr-number"),
        repository=inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", "")),
        test_command=inputs.get("test-command"),
        experiment=inputs.get("mlflow-experiment"),
        report_dir=Path(inputs.get("report-dir", _default_report_dir(project))).absolute(),
        workflow_run_url=inputs.get("workflow-run-url", gha.run_url()),
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
    if not rep.passed:
        failed = rep.failed()
        for check in failed:
            gha.error(check.summary, title=f"lockstep: {check.title}")
        raise ChecksFailed(f"{len(failed)} check(s) failed: {', '.join(c.title for c in failed)}")
    return EXIT_OK


def cmd_rebuild(inputs: Inputs) -> int:
    from . import rebuild

    args = rebuild.RebuildInputs(
        project_dir=inputs.path("working-directory"),
        config_path=inputs.get("config"),
        stages=inputs.words("stages"),
        force_all=inputs.flag("force-all"),
        set_params=[line.strip() for line in inputs.get("set-params").replace(",", "\n").splitlines() if line.strip()],
        reason=inputs.get("reason"),
        trigger=inputs.get("trigger", os.environ.get("GITHUB_EVENT_NAME", "manual")),
        actor=inputs.get("actor", os.environ.get("GITHUB_ACTOR", "")),
        branch=inputs.get("branch", os.environ.get("GITHUB_REF_NAME", "main")),
        repository=inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", "")),
        experiment=inputs.get("mlflow-experiment"),
        push=inputs.flag("push", True),
        register=inputs.flag("register", True),
        workflow_run_url=inputs.get("workflow-run-url", gha.run_url()),
    )
    result = rebuild.run(args)
    gha.set_outputs(result.outputs())
    rows = "\n".join(f"| {k} | `{v}` |" for k, v in result.outputs().items() if v not in ("", None))
    gha.add_summary(f"## lockstep main rebuild\n\n| output | value |\n| --- | --- |\n{rows}\n")
    return EXIT_OK


def cmd_comment(inputs: Inputs) -> int:
    from . import comment, report as reportmod
    from .github import GitHub

    repository = inputs.get("repository", os.environ.get("GITHUB_REPOSITORY", ""))
    if not repository or "/" not in repository:
        raise InputError("the repository is unknown", hint="set `repository` (owner/name) or run inside GitHub Actions")
    token = inputs.get("github-token", os.environ.get("GITHUB_TOKEN", ""))
    gha.mask(token)
    github = GitHub(token)
    report_dir = inputs.path("report-dir", "")
    if inputs.flag("from-artifact"):
        rep = comment.load_artifact(report_dir)
        head_sha = inputs.get("head-sha")
        if not head_sha:
            raise InputError("`head-sha` is required with from-artifact", hint="pass github.event.workflow_run.head_sha")
        pr_number = comment.pr_for_head(github, repository, head_sha, inputs.get("head-owner"), inputs.get("head-branch"))
        if rep.pr_number and rep.pr_number != str(pr_number):
            from .errors import ArtifactError

            raise ArtifactError(
                f"the artifact says PR #{rep.pr_number} but the head {head_sha[:12]} belongs to PR #{pr_number}",
                hint="the artifact was tampered with; not posted",
            )
        if rep.head_sha and rep.head_sha != head_sha:
            from .errors import ArtifactError

            raise ArtifactError(
                f"the artifact was produced for {rep.head_sha[:12]}, not the workflow run's head {head_sha[:12]}",
                hint="not posted",
            )
    else:
        results = report_dir / "results.json"
        if not results.is_file():
            raise InputError(f"{results}: no validation results to post", hint="run `lockstep validate` first; pass its report-dir")
        rep = reportmod.from_json(results.read_text("utf-8"))
        pr_number = int(inputs.get("pr-number") or rep.pr_number or 0)
        if not pr_number:
            raise InputError("no PR number", hint="pass `pr-number: ${{ github.event.pull_request.number }}`")
    posted = comment.post(github, repository, pr_number, rep, summary_url=gha.run_url())
    gha.set_outputs({"comment-id": posted.comment_id, "created": posted.created, "pr-number": pr_number})
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
    )
    gha.set_outputs({"model-name": result.model, "model-version": result.version, "alias": result.alias,
                     "previous-version": result.previous or "", "lock-commit": result.lock_commit})
    message = (
        f"moved {result.model}@{result.alias} from version {result.previous or '(none)'} to {result.version}. "
        f"Restore its exact code, data and model with: {result.restore}"
    )
    gha.info(message)
    gha.add_summary(f"## lockstep rollback\n\n{message}\n")
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
        gha.info(f"all {check.checked} object(s) referenced by dvc.lock are in {check.remote}")
        return EXIT_OK
    for output, files in check.missing_outputs().items():
        gha.info(f"missing from {check.remote}: {output}: {', '.join(files)}")
    raise ChecksFailed(
        f"{len(check.missing)} object(s) referenced by dvc.lock are missing from {check.remote}",
    )


def cmd_demo(inputs: Inputs) -> int:
    from . import demo

    return demo.main(Path(inputs.get("workdir")) if inputs.get("workdir") else None)


# --- parsing and the error boundary -------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[Inputs], int], str, Sequence[str]]] = {
    "validate": (cmd_validate, "validate a pull request's DVC artifacts and metrics",
                 ("working-directory", "config", "base-sha", "head-sha", "pr-number", "repository",
                  "test-command", "mlflow-experiment", "report-dir", "workflow-run-url")),
    "rebuild": (cmd_rebuild, "retrain on main in CI, push, commit dvc.lock back, register the model",
                ("working-directory", "config", "stages", "force-all", "set-params", "reason", "trigger", "actor", "branch",
                 "repository", "mlflow-experiment", "push", "register", "workflow-run-url")),
    "comment": (cmd_comment, "post or update the PR comment from a validation report",
                ("report-dir", "pr-number", "repository", "github-token", "from-artifact", "head-sha",
                 "head-owner", "head-branch")),
    "rollback": (cmd_rollback, "move a serving alias back to an earlier CI-built version",
                 ("working-directory", "config", "model", "alias", "version", "reason", "actor")),
    "check-config": (cmd_check_config, "validate lockstep.yaml against its schema", ("working-directory", "config")),
    "verify-remote": (cmd_verify_remote, "check that every object of dvc.lock is in the DVC remote", ("working-directory",)),
    "demo": (cmd_demo, "run the whole story on a temporary copy of the example project", ("workdir",)),
}


# One help text per option name, shared by every command that takes it (README, "Inputs"). Each
# option can also come from the action input `INPUT_<NAME>`; `lockstep COMMAND --help` shows them.
OPTION_HELP: dict[str, str] = {
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
        for option in options:
            command.add_argument(f"--{option}", dest=option.replace("-", "_"), default=None, metavar="VALUE",
                                 help=OPTION_HELP.get(option))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if not namespace.command:
        parser.print_help()
        return 2
    func = COMMANDS[namespace.command][0]
    try:
        return func(Inputs(namespace))
    except LockstepError as exc:
        gha.error(exc.render(), file=exc.file, line=exc.line, title=f"lockstep {namespace.command}: {exc.title}")
        where = f" ({exc.file}{':' + str(exc.line) if exc.line else ''})" if exc.file else ""
        gha.add_summary(f"### ❌ lockstep {namespace.command}: {exc.title}{where}\n\n{exc.message}\n\n{exc.hint}\n")
        gha.set_output("error", exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last boundary: a bug, said as one
        with gha.group("traceback (a bug in lockstep)"):
            traceback.print_exc(file=sys.stdout)
        gha.error(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in lockstep {__version__}; "
            "please report it with the log above.",
            title=f"lockstep {namespace.command}: internal error",
        )
        return EXIT_INTERNAL
