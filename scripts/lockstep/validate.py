"""PR validation on the developer's artifacts, in one process.

Checks, in order, each a named result in the report:
  1. lock-vs-code    dvc.lock matches dvc.yaml, the code, the params and the upstream lock entries
  2. lock-vs-remote  every object the lock references is in the remote, object by object
  3. pull            only the outputs the evaluation stages read
  4. tests           the project's own test command (optional)
  5. re-evaluation   the evaluation stages re-run on the pulled model agree with committed metrics
  6. base            metrics and params vs the PR's base commit
  7. gates           thresholds from lockstep.yaml
  8. mlflow          one run logged with params, metrics, the report and lineage tags
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, config as configmod, dvcrepo, gha, gitrepo
from .errors import DvcError, LockstepError
from .metrics import check_gates, diff, disagreements, format_value, parse_file
from .report import Check, Report, metric_rows, render


@dataclass
class ValidateInputs:
    project_dir: Path
    config_path: str = ""
    base_sha: str = ""
    head_sha: str = ""
    pr_number: str = ""
    repository: str = ""
    test_command: str = ""
    experiment: str = ""
    report_dir: Path = Path(".lockstep")
    workflow_run_url: str = ""


@dataclass
class ValidateResult:
    report: Report
    report_path: Path
    results_path: Path


def run(inputs: ValidateInputs) -> ValidateResult:
    project = inputs.project_dir.resolve()
    cfg = configmod.load(project, inputs.config_path or None)
    prefix = gitrepo.prefix_of(project)
    report = Report(
        project=prefix.rstrip("/") or ".",
        pr_number=inputs.pr_number,
        head_sha=inputs.head_sha or gitrepo.head(project),
        base_sha=inputs.base_sha,
        lock_digest=dvcrepo.lock_digest(project),
        workflow_run_url=inputs.workflow_run_url,
        lockstep_version=__version__,
    )
    os.chdir(project)
    repo = dvcrepo.open_repo(project)
    metrics_files = list(cfg.metrics_files or dvcrepo.metrics_files(repo))
    committed = _read_metrics(project, metrics_files)

    with gha.group("1. dvc.lock vs code and params"):
        stale = dvcrepo.stale_stages(repo)
        lock_ok = report.add(_stale_check(stale)).status == "pass"

    with gha.group("2. dvc.lock vs remote"):
        try:
            remote_check = _remote_check(dvcrepo.verify_remote(repo))
        except DvcError as exc:  # unreachable or no credentials: a failed check, with the report
            remote_check = _unreadable_remote_check(exc)
        remote_ok = report.add(remote_check).status == "pass"

    eval_stages = _evaluation_stages(repo, cfg)
    recomputed: dict[str, Any] | None = None
    if lock_ok and remote_ok:
        with gha.group("3. pull what evaluation needs"):
            targets = dvcrepo.dep_outputs(repo, [dvcrepo.stage_named(repo, s) for s in eval_stages])
            try:
                fetched = dvcrepo.pull(repo, targets)
                report.add(Check("pull", "Pull", "pass", f"pulled {', '.join(targets) or 'nothing'} ({fetched} file(s) fetched)"))
                pulled = True
            except LockstepError as exc:
                report.add(Check("pull", "Pull", "fail", exc.message, [exc.hint] if exc.hint else []))
                pulled = False
        tests_ok = True
        if pulled and inputs.test_command:
            with gha.group("4. project tests"):
                tests_ok = report.add(_run_tests(inputs.test_command, project)).status == "pass"
        if pulled and tests_ok:
            with gha.group("5. re-evaluate in CI"):
                recomputed, check = _reevaluate(repo, project, eval_stages, metrics_files, committed, cfg)
                report.add(check)
                repo = dvcrepo.open_repo(project)  # the lock entry of the evaluation stages was rewritten
    else:
        reason = "skipped: the lock checks failed, so the developer's outputs cannot be trusted or pulled"
        report.add(Check("pull", "Pull", "skip", reason))
        report.add(Check("re-evaluation", "Re-evaluation", "skip", reason))

    with gha.group("6. compare with the base branch"):
        base_metrics, base_params, base_check = _base(project, prefix, inputs.base_sha, metrics_files, repo)
        report.add(base_check)
        pr_metrics = recomputed if recomputed is not None else committed
        deltas = diff(base_metrics, pr_metrics)
        pr_params = _read_params(project, repo)
        report.params = [(d.name, d.base, d.new) for d in diff(base_params, pr_params) if d.changed]

    with gha.group("7. gates"):
        gates = check_gates(cfg.gates, pr_metrics, base_metrics)
        report.metrics = metric_rows(deltas, gates, {g.metric: g.direction for g in cfg.gates})
        report.add(_gates_check(gates))

    with gha.group("8. MLflow"):
        report.add(_log_to_mlflow(report, inputs, cfg, pr_params, pr_metrics, repo))

    return _write(report, inputs.report_dir if inputs.report_dir.is_absolute() else project / inputs.report_dir)


# --- the checks ---------------------------------------------------------------------------------


def _stale_check(stale: list[dvcrepo.StaleStage]) -> Check:
    if not stale:
        return Check("lock-vs-code", "dvc.lock vs code", "pass", "every stage in dvc.lock matches the code, params and dependencies")
    names = " ".join(s.name for s in stale)
    summary = (
        f"dvc.lock is stale: {'; '.join(s.describe() for s in stale)}. "
        f"Run `dvc repro {names}` locally, `dvc push`, and commit dvc.lock."
    )
    return Check("lock-vs-code", "dvc.lock vs code", "fail", summary, [s.describe() for s in stale])


def _remote_check(remote: dvcrepo.RemoteCheck) -> Check:
    if remote.ok:
        return Check("lock-vs-remote", "dvc.lock vs remote", "pass", f"all {remote.checked} object(s) referenced by dvc.lock are in {remote.remote}")
    missing = remote.missing_outputs()
    details = [f"{output}: {', '.join(files[:20])}{' …' if len(files) > 20 else ''}" for output, files in missing.items()]
    summary = (
        f"{len(remote.missing)} object(s) referenced by dvc.lock are missing from {remote.remote}, in "
        f"{', '.join(missing)}. Run `dvc push` from the machine that produced them, then re-run this job."
    )
    return Check("lock-vs-remote", "dvc.lock vs remote", "fail", summary, details)


def _unreadable_remote_check(exc: DvcError) -> Check:
    summary = (
        f"{exc.message}. Pull requests from forks get no secrets: a maintainer can push the branch to this "
        "repository to validate it with the repository's credentials."
    )
    return Check("lock-vs-remote", "dvc.lock vs remote", "fail", summary, [exc.hint])


def _evaluation_stages(repo, cfg: configmod.Config) -> list[str]:
    if cfg.evaluation_stages:
        for name in cfg.evaluation_stages:
            dvcrepo.stage_named(repo, name)
        return list(cfg.evaluation_stages)
    stages = [s.name for s in dvcrepo.pipeline_stages(repo) if any(out.metric for out in s.outs)]
    if not stages:
        from .errors import ConfigError

        raise ConfigError(
            f"{cfg.source}: no evaluation stage: no stage in dvc.yaml declares metrics",
            hint="set evaluation.stages in lockstep.yaml, or declare `metrics:` on the evaluation stage",
            file=cfg.source,
        )
    return stages


def _run_tests(command: str, project: Path) -> Check:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return Check("tests", "Project tests", "fail", f"the test command cannot be parsed: {exc}")
    gha.info(f"$ {command}")
    try:
        proc = subprocess.run(argv, cwd=project)  # noqa: S603 - the caller's own test command, not PR text
    except FileNotFoundError:
        return Check("tests", "Project tests", "fail", f"the test command was not found: {argv[0]}", ["check the `test-command` input"])
    if proc.returncode != 0:
        return Check("tests", "Project tests", "fail", f"`{command}` exited with {proc.returncode}; see its output in the log")
    return Check("tests", "Project tests", "pass", f"`{command}` passed")


def _reevaluate(repo, project: Path, stages: list[str], files: list[str], committed: dict[str, Any], cfg) -> tuple[dict[str, Any] | None, Check]:
    try:
        dvcrepo.reproduce(repo, stages, force=True)
    except LockstepError as exc:
        return None, Check("re-evaluation", "Re-evaluation", "fail", exc.message, [exc.hint])
    recomputed = _read_metrics(project, files)
    found = disagreements(committed, recomputed, absolute=cfg.tolerance_absolute, relative=cfg.tolerance_relative)
    if not found:
        return recomputed, Check(
            "re-evaluation",
            "Re-evaluation",
            "pass",
            f"re-ran {', '.join(stages)} on the developer's model: {len(recomputed)} metric(s) agree with the committed ones",
        )
    details = [f"{d.name}: committed {format_value(d.committed)}, recomputed {format_value(d.recomputed)}" for d in found]
    summary = (
        f"the committed metrics do not match what {', '.join(stages)} computes from the developer's model "
        f"({'; '.join(details[:5])}). They were edited by hand or produced by code that is not in this PR: "
        f"run `dvc repro` and commit the metrics it writes."
    )
    return recomputed, Check("re-evaluation", "Re-evaluation", "fail", summary, details)


def _base(project: Path, prefix: str, base_sha: str, files: list[str], repo) -> tuple[dict, dict, Check]:
    if not base_sha:
        return {}, {}, Check("base", "Base comparison", "skip", "no base commit given (not a pull request)")
    try:
        gitrepo.ensure_commit(project, base_sha)
    except LockstepError as exc:
        return {}, {}, Check("base", "Base comparison", "warn", exc.message, [exc.hint])
    metrics: dict[str, Any] = {}
    for name in files:
        text = gitrepo.show(project, base_sha, prefix + name)
        if text is not None:
            metrics.update(_parse_or_empty(text, name))
    params: dict[str, Any] = {}
    for name in _params_files(repo):
        text = gitrepo.show(project, base_sha, prefix + name)
        if text is not None:
            params.update(_params_keys(text, name))
    if not metrics:
        return metrics, params, Check("base", "Base comparison", "warn", f"the base commit {base_sha[:12]} has no metrics to compare with (first model?)")
    return metrics, params, Check("base", "Base comparison", "pass", f"compared with base {base_sha[:12]}: {len(metrics)} metric(s)")


def _gates_check(gates) -> Check:
    if not gates:
        return Check("gates", "Gates", "skip", "no gates configured in lockstep.yaml")
    failed = [g for g in gates if not g.passed]
    if not failed:
        return Check("gates", "Gates", "pass", f"all {len(gates)} gate(s) passed")
    details = [f"{g.metric}: {'; '.join(g.reasons)}" for g in failed]
    return Check("gates", "Gates", "fail", f"{len(failed)} of {len(gates)} gate(s) failed: {'; '.join(details)}", details)


def _log_to_mlflow(report: Report, inputs: ValidateInputs, cfg, params: dict, metrics: dict, repo) -> Check:
    from . import tracking

    if not tracking.configured():
        return Check("mlflow", "MLflow", "skip", "MLFLOW_TRACKING_URI is not set: no run was logged")
    repository = inputs.repository or os.environ.get("GITHUB_REPOSITORY", "local")
    experiment = experiment_name(inputs.experiment or cfg.experiment, repository, report.project)
    tags = {
        "lockstep.kind": "pr-validation",
        "lockstep.pr": report.pr_number,
        "lockstep.head_sha": report.head_sha,
        "lockstep.base_sha": report.base_sha,
        "lockstep.dvc_lock_sha256": report.lock_digest,
        "lockstep.version": __version__,
        "lockstep.workflow_run_url": report.workflow_run_url,
        "lockstep.verdict": "pass" if report.passed else "fail",
        "lockstep.project": report.project,
    }
    try:
        tracker = tracking.Tracker(retries=1, timeout=10)
        run_id = tracker.start_run(experiment, f"pr-{report.pr_number or 'local'}-{report.head_sha[:8]}", tags)
        tracker.log(run_id, params=params, metrics=metrics)
        report.mlflow_run_id = run_id
        report.mlflow_run_url = tracker.run_url(run_id)
        report_dir = inputs.report_dir if inputs.report_dir.is_absolute() else inputs.project_dir.resolve() / inputs.report_dir
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.md").write_text(render(report), "utf-8")
        tracker.log_files(run_id, [report_dir / "report.md"], "lockstep")
        tracker.end_run(run_id, "FINISHED" if report.passed else "FAILED")
    except LockstepError as exc:
        return Check("mlflow", "MLflow", "warn", f"the run was not logged: {exc.message}", [exc.hint])
    return Check("mlflow", "MLflow", "pass", f"logged run {run_id} in experiment {experiment}")


def experiment_name(template: str | None, repository: str, project: str) -> str:
    template = template or "lockstep/{repository}/{project}"
    return template.replace("{repository}", repository).replace("{project}", project)


# --- files --------------------------------------------------------------------------------------


def _parse_or_empty(text: str, name: str) -> dict[str, Any]:
    try:
        return parse_file(text, name)
    except ValueError:
        return {}


def _read_metrics(project: Path, files: list[str]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name in files:
        path = project / name
        if path.is_file():
            metrics.update(_parse_or_empty(path.read_text("utf-8", errors="replace"), name))
    return metrics


def _params_files(repo) -> list[str]:
    from dvc.dependency.param import ParamsDependency

    files = []
    for stage in dvcrepo.pipeline_stages(repo):
        for dep in stage.deps:
            if isinstance(dep, ParamsDependency):
                rel = os.path.relpath(dep.fs_path, repo.root_dir)
                if rel not in files:
                    files.append(rel)
    return files


def _params_keys(text: str, name: str) -> dict[str, Any]:
    """Flattened params, keyed `train.seed` for params.yaml and `file.yaml:train.seed` otherwise."""
    return {(k if name == "params.yaml" else f"{name}:{k}"): v for k, v in _parse_or_empty(text, name).items()}


def _read_params(project: Path, repo) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in _params_files(repo):
        path = project / name
        if path.is_file():
            params.update(_params_keys(path.read_text("utf-8"), name))
    return params


def _write(report: Report, report_dir: Path) -> ValidateResult:
    report_dir.mkdir(parents=True, exist_ok=True)
    report_path = report_dir / "report.md"
    results_path = report_dir / "results.json"
    report_path.write_text(render(report), "utf-8")
    results_path.write_text(report.to_json(), "utf-8")
    return ValidateResult(report, report_path, results_path)
