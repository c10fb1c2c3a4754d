"""PR validation on the developer's artifacts, as a sequence of steps over one explicit context.

A pull request cannot write its own verdict: the gates and settings come from the base commit's
lockstep.yaml, the PR's code runs without secrets, an evaluation the PR changed is checked with
the base's evaluation too, and the report never says "the developer's model" unless that file
was evaluated.

Checks, in order, each a named result in the report:
  config              which lockstep.yaml judges this PR (the base's); the PR's changes as proposals
  lock-vs-code        dvc.lock matches dvc.yaml, the code, the params and the upstream lock entries
  lock-vs-remote      every object the lock references is in the remote, object by object
  pull                only the outputs the evaluation stages read (fetched while the remote is checked)
  model-load          what loading the PR's pickle-family files would run, told from their bytes:
                      a call a model has no reason to make fails, one the base's model does not
                      make is marked for review (no check when nothing the evaluation reads is one)
  packages            the PR changes the packages of the project's environment (requirement
                      files, pyproject dependencies, uv.lock pins): marked for review
  (before the PR's code runs: the base's evaluation and the base's metrics and params are read)
  tests               the project's own test command (optional)
  re-evaluation       the evaluation stages re-run in CI agree with the committed metrics, and
                      re-running them evaluated the committed model (not a retrained one)
  trusted-evaluation  when the PR changed its evaluation: the base's evaluation on the PR's model
  base                metrics and params of the PR's base commit
  gates               thresholds of the trusted lockstep.yaml
  (review view)       no check: plots and DVC-tracked data base vs PR, training time where
                      dvclive recorded it (the reviewer's view; plots.html in the report folder)
  mlflow              one run with params, metrics, the report and lineage tags

Everything the verdict trusts is read or run before the first command of the PR's code, and after
each such command `guard` checks that it changed nothing lockstep runs later (else: no verdict).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shlex
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import (
    __version__,
    bytecode,
    config as configmod,
    dvcrepo,
    gha,
    gitrepo,
    guard as guardmod,
    lineage,
    modelscan,
    packages,
    procenv,
    projectenv,
    review,
    sandbox,
    tracking,
)
from .errors import ConfigError, DvcError, LockstepError
from .metrics import MISSING_METRIC, as_number, check_gates, diff, disagreements, format_value
from .report import PLOTS_FILE, Check, Report, Timing, metric_rows, render


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
    runner_price_per_minute: float | None = None  # turns the times in the report into a cost


@dataclass
class ValidateResult:
    report: Report
    report_path: Path
    results_path: Path
    steps: list[tuple[str, float]] = field(default_factory=list)  # (step, wall seconds), in order


@dataclass
class Pulled:
    """What the pull of the evaluation's inputs fetched, or why it failed."""

    targets: list[str]
    fetched: int
    error: LockstepError | None = None


@dataclass
class Context:
    """Everything a step needs, passed explicitly: no step changes the process's directory or
    environment."""

    inputs: ValidateInputs
    project: Path
    prefix: str
    report: Report
    cfg: configmod.Config  # the trusted config: the base's when it has one
    repo: Any
    scratch: Path  # a temporary folder for this run (base checkout, the project's local MLflow store)
    base_available: bool = False
    eval_stages: list[str] = field(default_factory=list)
    committed: dvcrepo.MetricsRead = field(default_factory=dvcrepo.MetricsRead)
    recomputed: dvcrepo.MetricsRead | None = None
    trusted: dvcrepo.MetricsRead | None = None  # the base's evaluation of the PR's model
    base_metrics: dvcrepo.MetricsRead = field(default_factory=dvcrepo.MetricsRead)
    local_mlflow: str = ""
    retrains: bool = False  # the evaluation stages also (re)train the model
    guard: guardmod.Guard | None = None  # what the PR's code must not change (None: not watched)
    pending_trusted: Check | None = None  # the base's evaluation, reported once the PR's has run
    base_params: dict[str, Any] = field(default_factory=dict)
    pr_params: dict[str, Any] = field(default_factory=dict)
    plots_html: str = ""  # every plot base vs PR, for the report folder (review.plots_html)
    remotes: dvcrepo.Remotes | None = None  # the base's DVC remotes, when the PR changed them
    undeclared: list[str] = field(default_factory=list)  # files the PR changed that its evaluation may run, undeclared
    packages_changed: list[str] = field(default_factory=list)  # what the Packages check found
    base_env: bool = False  # the base's evaluation ran in an environment from the base's requirements
    scanned: set[str] = field(default_factory=set)  # what the Model loading check read, before anything loaded it
    tracker: tracking.TrackerProcess | None = None  # the MLflow client, importing MLflow meanwhile
    pulled: Pulled | None = None  # the pull made during the remote check (None: not made)
    remade: list[str] = field(default_factory=list)  # stages run before the evaluation: they make its `push: false` inputs

    def stage_env(self) -> dict[str, str]:
        """The environment of the PR's own code: no secret, the trusted config's `env:`. Called
        right before that code runs, so it first waits for the project's environment, and for the
        MLflow client's import of MLflow (which must end before that code can rewrite a module)."""
        if self.tracker is not None:
            self.tracker.ready()
        projectenv.wait_until_installed()
        return procenv.for_untrusted_code(os.environ, self.cfg.env, mlflow_uri=self.local_mlflow)

    @property
    def pr_metrics(self) -> dict[str, Any]:
        """The PR's metrics: what the base's evaluation made of its model where that ran, the rest as
        CI recomputed them, else as committed."""
        own = (self.recomputed or self.committed).values
        return {**own, **self.trusted.values} if self.trusted is not None else own


def run(inputs: ValidateInputs) -> ValidateResult:
    sandbox.harden()  # before any of the PR's code runs: no secret in /proc/<pid>/environ, no orphan escapes
    # MLflow is imported in a child meanwhile, on another core; it has ended before the PR's code runs
    tracker = tracking.TrackerProcess(retries=1, timeout=10) if tracking.configured() else None
    try:
        return _run(inputs, tracker)
    finally:
        if tracker is not None:
            tracker.close()


def _run(inputs: ValidateInputs, tracker: tracking.TrackerProcess | None) -> ValidateResult:
    project = inputs.project_dir.resolve()
    if not project.is_dir():
        from .errors import InputError

        raise InputError(f"working-directory {inputs.project_dir}: no such folder", hint="point `working-directory` at the DVC project")
    prefix = gitrepo.prefix_of(project)
    repository = lineage.repository(inputs.repository)
    head_cfg = configmod.load(project, inputs.config_path or None)
    report = Report(
        project=lineage.project_label(prefix, repository, project),
        pr_number=inputs.pr_number,
        head_sha=inputs.head_sha or gitrepo.head(project),
        base_sha=inputs.base_sha,
        workflow_run_url=inputs.workflow_run_url,
        lockstep_version=__version__,
        price_per_minute=inputs.runner_price_per_minute,
    )
    started = time.monotonic()
    steps: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="lockstep-validate-") as scratch:
        ctx = Context(inputs, project, prefix, report, head_cfg, dvcrepo.open_repo(project), Path(scratch), tracker=tracker)
        report.lock_digest = dvcrepo.lock_digest(ctx.repo)
        ctx.guard = guardmod.for_job(project, gitrepo.common_dir(project))
        ctx.local_mlflow = (Path(scratch) / "mlruns").as_uri()
        steps.append(("open", round(time.monotonic() - started, 3)))
        for step in STEPS:
            began = time.monotonic()
            step(ctx)
            steps.append((step_id(step), round(time.monotonic() - began, 3)))
        plots_html = ctx.plots_html
    report.times.append(Timing("validation", round(time.monotonic() - started, 3)))
    gha.info("time per step: " + " · ".join(f"{name} {seconds:.2f} s" for name, seconds in steps))
    if ctx.guard is not None and ctx.guard.seconds:
        gha.info(f"guard: {ctx.guard.describe()}")
    report_dir = inputs.report_dir if inputs.report_dir.is_absolute() else project / inputs.report_dir
    result = _write(report, report_dir, plots_html, steps)
    bytecode.keep_for_cache()
    return result


def step_id(step) -> str:
    """How the job log and results.json's `steps` name a step: `step_lock_vs_remote` -> `lock-vs-remote`."""
    return step.__name__.removeprefix("step_").replace("_", "-")


# --- the steps ----------------------------------------------------------------------------------


def step_config(ctx: Context) -> None:
    """Judge by the base's lockstep.yaml and check against the base's DVC remotes; show the PR's
    changes to either as proposals."""
    _judge_by_base_config(ctx)
    if not ctx.base_available:
        return
    where, changes = _use_base_remotes(ctx)
    check = ctx.report.check("config")
    if changes and check is not None:
        check.details += [f"{where}: {change}: applies after merge" for change in changes]
        check.summary += (f"; this PR changes the DVC remotes in {where} ({len(changes)} change(s)): dvc.lock is "
                          "checked against, and pulled from, the base's remotes")
        if check.status == "pass":
            check.status = "warn"


def _use_base_remotes(ctx: Context) -> tuple[str, list[str]]:
    """The base's DVC remotes serve this validation, with the job's credentials: a PR that points
    `.dvc/config` (or a `.dvc/config.local` it commits) elsewhere would otherwise choose where its
    objects are looked for, and receive the credentials. A `.dvc/config.local` the job wrote (not
    in the PR's commit: `dvc remote modify --local` with a secret) is kept. Returns the files the
    PR's changes come from, and the changes (by name, never by value)."""
    config, local = ".dvc/config", ".dvc/config.local"  # as the project names them; git's paths have the prefix
    text = gitrepo.show(ctx.project, ctx.inputs.base_sha, ctx.prefix + config)
    if text is None:
        return config, []  # DVC adopted in this PR: its own remotes, as with a first lockstep.yaml
    committed_local = gitrepo.show(ctx.project, "HEAD", ctx.prefix + local) is not None
    if committed_local:
        local_text = gitrepo.show(ctx.project, ctx.inputs.base_sha, ctx.prefix + local)  # the base's, if the team commits one
    else:
        path = ctx.project / ".dvc" / "config.local"
        local_text = path.read_text("utf-8") if path.is_file() else None
    try:
        base = dvcrepo.trusted_remotes(ctx.repo, text, local_text)
    except DvcError as exc:
        return config, [f"the base's cannot be read ({exc.message}), so this PR's own remotes are used"]
    try:
        own = dvcrepo.checkout_remotes(ctx.repo)
    except DvcError:
        own = ({}, None)  # the PR's own cannot be read: every base remote shows as removed, and is used
    changes = dvcrepo.remote_changes(base, own)
    if changes:
        ctx.remotes = base
        ctx.repo = dvcrepo.open_repo(ctx.project, remotes=base)
    return (f"{config} and {local} (in this PR's commit)" if committed_local else config), changes


def _judge_by_base_config(ctx: Context) -> None:
    with gha.group("which lockstep.yaml judges this PR"):
        base_sha = ctx.inputs.base_sha
        if not base_sha:
            ctx.report.add(Check("config", "Config", "pass", f"{ctx.cfg.source} (no base commit: not a pull request)"))
            return
        try:
            gitrepo.ensure_commit(ctx.project, base_sha)
            ctx.base_available = True
        except LockstepError as exc:
            ctx.report.add(Check(
                "config", "Config", "fail",
                f"the base commit {base_sha[:12]} cannot be read, so neither its lockstep.yaml nor its metrics can "
                f"judge this PR: {exc.message}",
                [exc.hint],
            ))
            return
        name = ctx.inputs.config_path or configmod.CONFIG_NAME
        text = gitrepo.show(ctx.project, base_sha, ctx.prefix + name)
        if text is None:
            ctx.report.add(Check(
                "config", "Config", "warn",
                f"the base commit has no {name} (first adoption): this PR is judged by its own {name}",
            ))
            return
        try:
            base_cfg = configmod.load_text(text, f"{name}@{base_sha[:12]}")
        except ConfigError as exc:
            ctx.report.add(Check(
                "config", "Config", "warn",
                f"the base commit's {name} is invalid ({exc.message}): this PR is judged by its own {name}",
            ))
            return
        proposed = configmod.proposed_changes(base_cfg, ctx.cfg)
        ctx.cfg = base_cfg
        if proposed:
            ctx.report.add(Check(
                "config", "Config", "warn",
                f"judged by the base's {name}; this PR proposes {len(proposed)} change(s) to it, which apply after "
                "merge and do not change this verdict",
                [f"{change}: applies after merge" for change in proposed],
            ))
        else:
            ctx.report.add(Check("config", "Config", "pass", f"judged by the base's {name} (unchanged by this PR)"))


def step_lock_vs_code(ctx: Context) -> None:
    with gha.group("dvc.lock vs code and params"):
        stale = dvcrepo.stale_stages(ctx.repo)
        composed = _stale_composition(ctx)
        if composed is not None and composed.status == "fail":
            if stale:  # `dvc exp run` fixes both
                composed.summary += f" dvc.lock does not match the committed files either: {'; '.join(s.describe() for s in stale)}."
                composed.details += [s.describe() for s in stale]
            ctx.report.add(composed)
            return
        if not stale:
            passed = Check("lock-vs-code", "dvc.lock vs code", "pass", "every stage in dvc.lock matches the code, params and dependencies")
            if composed is not None:  # what was (or was not) compared with the Hydra composition
                passed.status, passed.summary = composed.status, f"{passed.summary}; {composed.summary}"
                passed.details += composed.details
            ctx.report.add(passed)
            return
        names = " ".join(s.name for s in stale)
        summary = (
            f"dvc.lock is stale: {'; '.join(s.describe() for s in stale)}. "
            f"Run `dvc repro --downstream {names}` locally (the stale stages and the ones after them, the "
            "evaluation among them), `dvc push`, and commit dvc.lock."
        )
        folders = sorted({c.path for s in stale for c in s.changes if c.kind == "untracked"})
        if folders:
            summary += (
                f" {', '.join(folders)}: DVC hashes every file of a dependency folder, git-ignored ones too, such as "
                "the bytecode Python writes there (`__pycache__/`) or a package's `*.egg-info/`; these differ on "
                "every machine, so no clean checkout can match that hash. List them in the project's `.dvcignore` "
                "(`__pycache__/`, `*.egg-info/`), then run `dvc repro` (or `dvc commit -f` when the code has not "
                "changed since the last run) and commit `.dvcignore` and dvc.lock."
            )
        notes = composed.details if composed is not None else []  # what the Hydra composition was (not) compared with
        ctx.report.add(Check("lock-vs-code", "dvc.lock vs code", "fail", summary, [s.describe() for s in stale] + notes))


def _stale_composition(ctx: Context) -> Check | None:
    """With DVC's Hydra integration, `dvc exp run` composes params.yaml from conf/ before it runs
    the stages, and `dvc repro` does not: a PR that edited conf/ and ran `dvc repro` has a lock that
    matches a params.yaml conf/ no longer gives. Composed here as DVC composes it, without the
    project's code (`dvcrepo.hydra_of`), and compared as data. None when the project does not
    compose its params; else a failed check, or the note the passing check carries."""
    try:
        hydra, drift = dvcrepo.stale_composition(ctx.repo)
    except DvcError as exc:
        return Check("lock-vs-code", "dvc.lock vs code", "fail",
                     f"params.yaml is composed by `dvc exp run` (DVC's Hydra integration), and composing it as DVC does "
                     f"fails: {exc.message}. Fix the config, {exc.hint}", [exc.message])
    if hydra is None:
        return None
    source = hydra.describe()
    if hydra.refused:
        return Check("lock-vs-code", "dvc.lock vs code", "warn",
                     f"params.yaml was not compared with its Hydra composition from {source}: {hydra.refused}",
                     [f"{dvcrepo.HYDRA_OUTPUT}: not composed by lockstep ({hydra.refused})"])
    if not drift:
        return Check("lock-vs-code", "dvc.lock vs code", "pass", f"params.yaml is what {source} composes",
                     [f"{dvcrepo.HYDRA_OUTPUT}: what {source} composes (DVC's Hydra integration)"])
    shown = "; ".join(change.describe() for change in drift[:3]) + (f"; {len(drift) - 3} more" if len(drift) > 3 else "")
    return Check(
        "lock-vs-code", "dvc.lock vs code", "fail",
        f"params.yaml is stale: it is not what `dvc exp run` composes from {source} (DVC's Hydra integration): "
        f"{shown}. dvc.lock and the model were made from the committed params.yaml, not from {hydra.config_dir}/. "
        f"Run `dvc exp run` (it composes params.yaml, then reproduces), `dvc push`, and commit params.yaml and dvc.lock.",
        [change.describe() for change in drift],
    )


def step_lock_vs_remote(ctx: Context) -> None:
    """Check every object the lock references against the remote, in a thread of its own that
    touches no DVC repo (`dvcrepo.remote_probe`), while this one pulls what the evaluation needs:
    both mostly wait on the remote. The pull only reads the remote and writes the workspace's
    outputs and DVC cache, and counts only when both lock checks pass (`step_pull`); it starts only
    once dvc.lock matches the code, as it did when it came after this check."""
    with gha.group("dvc.lock vs remote"), ThreadPoolExecutor(1, thread_name_prefix="lockstep-remote") as pool:
        try:
            probe = dvcrepo.remote_probe(ctx.repo)  # what to check, read here; the remote is asked in the thread
        except DvcError as exc:
            _remote_unusable(ctx, exc)
            return
        checking = pool.submit(probe)
        if _passed(ctx, "lock-vs-code"):
            ctx.pulled = _pull(ctx)
        try:
            remote = checking.result()
        except DvcError as exc:
            _remote_unusable(ctx, exc)
            return
        if remote.ok:
            ctx.report.add(Check("lock-vs-remote", "dvc.lock vs remote", "pass", remote.summary()))
            return
        missing = remote.missing_outputs()
        details = [f"{output}: {', '.join(files[:20])}{' …' if len(files) > 20 else ''}" for output, files in missing.items()]
        summary = (
            f"{len(remote.missing)} object(s) referenced by dvc.lock are missing from {remote.remote}, in "
            f"{', '.join(missing)}. Run `dvc push` from the machine that produced them, then re-run this job."
        )
        ctx.report.add(Check("lock-vs-remote", "dvc.lock vs remote", "fail", summary, details))


def _remote_unusable(ctx: Context, exc: DvcError) -> None:
    """Unreachable or no credentials: a failed check, with the report."""
    summary = (
        f"{exc.message}. Pull requests from forks get no secrets: a maintainer can push the branch to this "
        "repository to validate it with the repository's credentials."
    )
    ctx.report.add(Check("lock-vs-remote", "dvc.lock vs remote", "fail", summary, [exc.hint]))


def _pull(ctx: Context) -> Pulled:
    ctx.eval_stages = _evaluation_stages(ctx.repo, ctx.cfg)
    model_stage = _model_stage(ctx)
    ctx.retrains = bool(model_stage) and bool(set(ctx.eval_stages) & dvcrepo.upstream_of(ctx.repo, [model_stage]))
    try:
        ctx.remade = _remade(ctx, model_stage)
        targets = dvcrepo.evaluation_inputs(ctx.repo, [*ctx.remade, *ctx.eval_stages], ctx.cfg.model_path)
    except LockstepError as exc:
        return Pulled([], 0, exc)
    try:
        return Pulled(targets, dvcrepo.pull(ctx.repo, targets))
    except LockstepError as exc:
        return Pulled(targets, 0, exc)


def _remade(ctx: Context, model_stage: str) -> list[str]:
    """The stages CI runs before the evaluation because they make what it reads and no remote holds
    (`push: false`); never the model's stage, which would replace the developer's model with CI's."""
    remade = dvcrepo.unpushed_producers(ctx.repo, ctx.eval_stages)
    if model_stage and model_stage in remade:
        unpushed = ", ".join(dvcrepo.unpushed_outputs(ctx.repo, [model_stage]))
        raise DvcError(
            f"the evaluation reads {unpushed}, which dvc.yaml marks `push: false` (no remote holds it), and stage "
            f"{model_stage} makes it, the stage that makes the model {ctx.cfg.model_path}: CI could make it only by "
            "retraining, and would then evaluate its own model, not the developer's",
            hint=f"remove `push: false` from {unpushed} in dvc.yaml and run `dvc push`, or have another stage make it",
            file="dvc.yaml",
        )
    return remade


def step_pull(ctx: Context) -> None:
    """Report the pull `step_lock_vs_remote` made meanwhile."""
    ctx.eval_stages = _evaluation_stages(ctx.repo, ctx.cfg)
    ctx.committed = dvcrepo.read_metrics(ctx.repo, rev="HEAD", files=ctx.cfg.metrics_files)
    if not _passed(ctx, "lock-vs-code", "lock-vs-remote") or ctx.pulled is None:
        reason = "skipped: the lock checks failed, so the developer's outputs cannot be trusted or pulled"
        ctx.report.add(Check("pull", "Pull", "skip", reason))
        return
    with gha.group("pull what evaluation needs"):
        pulled = ctx.pulled
        if pulled.error is not None:
            exc = pulled.error
            ctx.report.add(Check("pull", "Pull", "fail", exc.message, [exc.hint] if exc.hint else []))
            return
        said = f"pulled {', '.join(pulled.targets) or 'nothing'} ({pulled.fetched} file(s) fetched)"
        if ctx.remade:
            unpushed = dvcrepo.unpushed_outputs(ctx.repo, ctx.remade)
            said += (f"; {', '.join(unpushed)} {'is' if len(unpushed) == 1 else 'are'} `push: false` in dvc.yaml, so no remote "
                     f"holds {'it' if len(unpushed) == 1 else 'them'}: CI makes {'it' if len(unpushed) == 1 else 'them'} again "
                     f"with {', '.join(ctx.remade)} before the evaluation")
        ctx.report.add(Check("pull", "Pull", "pass", said))


def step_tests(ctx: Context) -> None:
    command = ctx.inputs.test_command
    if not command or not _passed(ctx, "pull"):
        return
    with gha.group("project tests"):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            ctx.report.add(Check("tests", "Project tests", "fail", f"the test command cannot be parsed: {exc}"))
            return
        gha.info(f"$ {command}")
        try:
            returncode = sandbox.run(argv, cwd=ctx.project, env=ctx.stage_env(), what="the test command", guard=ctx.guard)
        except FileNotFoundError:
            ctx.report.add(Check("tests", "Project tests", "fail", f"the test command was not found: {argv[0]}", ["check the `test-command` input"]))
            return
        if returncode != 0:
            ctx.report.add(Check("tests", "Project tests", "fail", f"`{command}` exited with {returncode}; see its output in the log"))
            return
        ctx.report.add(Check("tests", "Project tests", "pass", f"`{command}` passed"))


def step_reevaluate(ctx: Context) -> None:
    """Re-run the evaluation stages in CI, without secrets, and compare with what was committed.
    When they also (re)train the model, the re-run evaluates a model CI just trained, so its
    digest must match the committed one for the verdict to be about the developer's model."""
    agreement = _reevaluate(ctx)
    if agreement is not None:
        ctx.report.add(agreement)
    _report_trusted_evaluation(ctx, agreement)


def _reevaluate(ctx: Context) -> Check | None:
    if not _passed(ctx, "pull") or not _passed(ctx, "tests", missing_ok=True):
        pull = ctx.report.check("pull")
        if pull is not None and pull.status == "skip":
            return Check("re-evaluation", "Re-evaluation", "skip", pull.summary)
        return None
    if not _passed(ctx, "model-load", missing_ok=True):
        return Check("re-evaluation", "Re-evaluation", "skip", "skipped: the model file would run code when loaded (Model loading)")
    with gha.group(f"re-evaluate in CI: {', '.join(ctx.eval_stages)}"):
        retrains = ctx.retrains
        committed_model = dvcrepo.output_digest(ctx.repo, ctx.cfg.model_path or "") if retrains else ""
        recorded = dvcrepo.output_hashes(ctx.repo, ctx.remade)  # what the developer's run of them made
        env = ctx.stage_env()
        started = ended = time.monotonic()
        fetched: list[str] = []  # outputs of other stages the evaluation read without declaring them
        try:
            while True:
                try:
                    _run_evaluation(ctx, env)
                    break
                except DvcError as exc:
                    # a developer's workspace has every output; CI pulls what the stages declare. An
                    # output the evaluation reads undeclared is pulled as dvc.lock records it (what
                    # the remote check verified), and the evaluation runs again, once per output
                    if not exc.undeclared or exc.undeclared in fetched or len(fetched) >= MAX_UNDECLARED_PULLS:
                        raise
                    fetched.append(exc.undeclared)
                    gha.warning(f"{exc.hint}. lockstep pulled {exc.undeclared} as dvc.lock records it and runs the "
                                "evaluation again", file="dvc.yaml")
                    dvcrepo.pull(ctx.repo, [exc.undeclared])
                    _refuse_code_in(ctx.project, exc.undeclared)
                finally:
                    ended = time.monotonic()  # the guard's check after it is lockstep's time, not the evaluation's
        except guardmod.Tampered:
            raise
        except LockstepError as exc:
            # what to do goes first when lockstep could tell why (a missing module, an MLflow server
            # of the code's own), before the stage's last words
            said = exc.message if exc.hint.startswith(dvcrepo.GENERIC_STAGE_HINT) else f"{exc.hint}. {exc.message}"
            return Check("re-evaluation", "Re-evaluation", "fail", said, [exc.hint])
        finally:
            ctx.report.times.append(Timing("evaluation", round(ended - started, 3), source=(
                f"dvc repro of {', '.join(ctx.eval_stages)}" + (", which also trains the model" if retrains else ""))))
        ctx.repo = dvcrepo.open_repo(ctx.project, remotes=ctx.remotes)  # the re-run stages' lock entries were rewritten
        ctx.recomputed = dvcrepo.read_metrics(ctx.repo, files=ctx.cfg.metrics_files)
        agreement = _agreement(ctx, retrains, committed_model)
        if ctx.remade:
            _report_remade(ctx, agreement, recorded)
        if fetched:
            agreement.details.append(
                f"the evaluation reads {', '.join(fetched)} (outputs of other stages), which dvc.yaml does not list in its "
                f"deps: CI pulled {'it' if len(fetched) == 1 else 'them'} after a first run failed. Add the files it reads "
                "to the evaluation stage's deps, run `dvc repro`, and commit dvc.lock, so that DVC re-runs the "
                "evaluation when they change")
        return agreement


MAX_UNDECLARED_PULLS = 3  # outputs pulled for an evaluation that reads them undeclared, one run each


def _dangerous(project: Path, path: str, scan: modelscan.ModelScan) -> list[str]:
    """`path: module.name` (a file) or `path/inner/file: module.name` (a folder) for each global
    whose loading would run code."""
    if (project / path).is_dir():
        return [f"{path}/{entry}" for entry in scan.dangerous()]
    return [f"{path}: {entry.split(': ', 1)[-1]}" for entry in scan.dangerous()]


def _refuse_code_in(project: Path, path: str) -> None:
    """An output the evaluation reads without declaring it is pulled after its first run failed, so
    the Model loading check never read it: a pickle-family file in it that would run code when
    loaded stops the evaluation before it runs again."""
    dangerous = _dangerous(project, path, modelscan.scan(project / path))
    if dangerous:
        raise DvcError(
            f"loading {'; '.join(dangerous[:3])} would run code that data or a model has no reason to run: lockstep "
            "did not run the evaluation again, and nothing loaded it",
            hint=f"the evaluation reads {path} (an output of another stage) without declaring it in dvc.yaml, so the Model "
                 "loading check could not read it before the evaluation ran; save the file again from the code that makes "
                 "it, and declare it in the evaluation stage's deps",
            file="dvc.yaml",
        )


def _report_remade(ctx: Context, agreement: Check, recorded: dict[str, str]) -> None:
    """Whether what CI made again of the evaluation's `push: false` inputs is what dvc.lock records
    (the developer's run): when it is not, the evaluation read other data than the developer's."""
    made = dvcrepo.output_hashes(ctx.repo, ctx.remade)
    differ = [f"{path}: CI made {made.get(path, '(nothing)')[:12]}, dvc.lock records {value[:12]}"
              for path, value in recorded.items() if made.get(path) != value]
    stages = ", ".join(ctx.remade)
    if not differ:
        agreement.details.append(f"CI made {', '.join(recorded) or 'the `push: false` inputs'} again with {stages} "
                                 "(`push: false` in dvc.yaml) before the evaluation: byte for byte what dvc.lock records")
        return
    agreement.details.append(
        f"CI made the evaluation's `push: false` inputs again with {stages}, and they differ from what dvc.lock records "
        f"({'; '.join(differ[:5])}): {stages} does not make the same data twice, so the evaluation read data CI made, "
        "not the developer's. Make it deterministic (seed its randomness), or remove `push: false` and `dvc push` it")
    if agreement.status == "pass":
        agreement.status = "warn"
        agreement.summary += "; on inputs CI made again, which differ from the developer's (details)"


def _run_evaluation(ctx: Context, env: dict[str, str]) -> None:
    with sandbox.contained("the re-evaluation", ctx.guard):
        dvcrepo.clear_named_metrics(ctx.repo, ctx.eval_stages)
        # what the stages keep between runs (`persist: true`) is the PR's: git carries it,
        # and a stage that reads it back (a score cache) would be judged by it
        removed = dvcrepo.remove_persisted(ctx.repo, ctx.eval_stages)
        if removed:
            gha.info(f"removed before the re-evaluation, as DVC removes an output that does not persist: "
                     f"{', '.join(removed)} (`persist: true`); the stages start from their declared inputs")
        dvcrepo.reproduce(ctx.project, [*ctx.remade, *ctx.eval_stages], env=env, force=True)


def _report_trusted_evaluation(ctx: Context, agreement: Check | None) -> None:
    """The base's evaluation ran before the PR's code; it is reported, and judges, when the PR's own
    re-evaluation ran and did not fail (the side by side needs both)."""
    pending, ctx.pending_trusted = ctx.pending_trusted, None
    if pending is None or agreement is None or agreement.status in ("fail", "skip"):
        ctx.trusted = None
        return
    if ctx.trusted is not None:
        # the PR's own evaluation, from the files the base's evaluation was read from
        recomputed = (ctx.recomputed or dvcrepo.MetricsRead()).only(ctx.trusted.files())
        differ = disagreements(ctx.trusted.values, recomputed.values, absolute=ctx.cfg.tolerance_absolute,
                               relative=ctx.cfg.tolerance_relative)
        if ctx.undeclared and not ctx.retrains:
            files = ", ".join(ctx.undeclared[:3]) + (f" and {len(ctx.undeclared) - 3} more" if len(ctx.undeclared) > 3 else "")
            what = (f"this PR changes files its evaluation may import or read, which dvc.yaml does not declare ({files})"
                    if not ctx.base_env else f"this PR changes what its evaluation runs beyond dvc.yaml's declared "
                    f"dependencies ({files}); the base's evaluation ran in an environment from the base's requirements")
            if differ:
                pending.summary = (f"needs a maintainer's review: {what}, and the base's evaluation of this PR's model gives "
                                   "other metrics than this PR's own. The gates judge by the base's evaluation")
            else:
                pending.status, pending.summary = "pass", f"{what}: the base's evaluation of this PR's model gives the same metrics"
        if differ and pending.status != "pass":  # the gap itself, where a reviewer looks first: a gated metric's
            gated = {gate.metric for gate in ctx.cfg.gates}
            first = min(differ, key=lambda d: (d.name not in gated, d.name))
            pending.summary += (f" ({first.name}: base's evaluation {format_value(first.committed)} · this PR's evaluation "
                                f"{format_value(first.recomputed)}{f'; {len(differ) - 1} more' if len(differ) > 1 else ''})")
        pending.details[:0] = [
            f"{name}: base's evaluation {format_value(ctx.trusted.values.get(name))} · this PR's evaluation "
            f"{format_value(recomputed.values.get(name))}"
            for name in sorted(ctx.trusted.values)
        ]
    ctx.report.add(pending)


def _holds_run_id(path: Path, limit: int = 256 << 20) -> bool:
    """Whether the model file (or a file of the model folder, up to `limit` bytes read) holds the
    attribute MLflow's autolog sets on a fitted estimator, pickled with it."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    left = limit
    for file in files:
        if left <= 0:
            break
        with contextlib.suppress(OSError), file.open("rb") as handle:
            data = handle.read(left)
            left -= len(data)
            if b"_mlflow_run_id" in data:
                return True
    return False


def _agreement(ctx: Context, retrains: bool, committed_model: str) -> Check:
    recomputed = ctx.recomputed or dvcrepo.MetricsRead()
    stages = ", ".join(ctx.eval_stages)
    # files no evaluation stage writes and CI did not pull (a training stage's cached metrics): the
    # training run's own, compared with the base, not recomputed
    written = set(dvcrepo.metrics_written_by(ctx.repo, ctx.eval_stages))
    not_rerun = {name for name in recomputed.problems if name not in written and name != "(all)"}
    committed = {k: v for k, v in ctx.committed.values.items() if ctx.committed.source_of(k) not in not_rerun}
    comparable = {} if "(all)" in ctx.committed.problems else {
        k: v for k, v in recomputed.values.items() if recomputed.source_of(k) not in ctx.committed.problems
    }
    notes = [f"{name}: {why}" for name, why in ctx.committed.problems.items()]
    notes += [f"{name}: written by a stage that is not re-run in CI (not an evaluation stage); its committed values are "
              "compared with the base, not recomputed" for name in sorted(not_rerun)]
    notes += [f"{name}: read from {source}" for name, source in ctx.committed.sources.items()]
    empty = {**ctx.committed.no_numbers, **recomputed.no_numbers}
    notes += list(empty.values())
    found = disagreements(committed, comparable, absolute=ctx.cfg.tolerance_absolute, relative=ctx.cfg.tolerance_relative)
    what = "the developer's model"
    if retrains:
        retrained = dvcrepo.output_digest(ctx.repo, ctx.cfg.model_path or "")
        if retrained != committed_model:
            if ctx.cfg.deterministic:
                advice = ("Run `dvc repro` from a clean checkout and commit what it produces; if training is not "
                          "deterministic, set `evaluation.deterministic: false` in lockstep.yaml")
                if _holds_run_id(ctx.project / (ctx.cfg.model_path or "")):
                    advice = ("The model file holds the MLflow run id autolog attaches to a fitted model "
                              "(`_mlflow_run_id`), which differs on every run, so no two trainings give the same file: "
                              "delete it before saving (`del model._mlflow_run_id`), or set "
                              "`evaluation.deterministic: false` in lockstep.yaml")
                return Check(
                    "re-evaluation", "Re-evaluation", "fail",
                    f"the committed model is not what this code trains: {stages} also trains {ctx.cfg.model_path}, and "
                    f"re-running it in CI produced md5 {retrained[:12] or '(none)'} where dvc.lock records md5 "
                    f"{committed_model[:12] or '(none)'}. {advice}",
                    [f"committed model md5 {committed_model}", f"retrained model md5 {retrained}", *notes],
                )
            what = (f"a model retrained in CI (md5 {retrained[:12]}), not the developer's model "
                    f"(md5 {committed_model[:12]}): training is not deterministic (`evaluation.deterministic: false`), "
                    "so the developer's model itself was not evaluated")
        else:
            what = f"the developer's model (retrained in CI byte for byte: md5 {retrained[:12]})"
    if not found:
        agreed = len(set(committed) & set(comparable))
        numbers = sum(1 for name in set(committed) & set(comparable) if as_number(committed[name]) is not None)
        unread = f"; {len(ctx.committed.problems)} committed file(s) could not be read (details)" if ctx.committed.problems else ""
        recomputed_numbers = any(as_number(value) is not None for value in recomputed.values.values())
        if not numbers and not recomputed_numbers:
            # nothing was judged: a pass would say the developer's numbers were checked (a committed
            # file git does not carry, with CI's numbers read, is the ignored-results shape: a pass)
            said = (f"; {', '.join(sorted(empty))}: no numeric value read (details)" if empty else
                    "; no metrics file was read: list the evaluation's files under `metrics.files` in lockstep.yaml")
            return Check("re-evaluation", "Re-evaluation", "warn",
                         f"re-ran {stages} on {what}, but no numeric metric was compared with a committed one{said}{unread}", notes)
        return Check("re-evaluation", "Re-evaluation", "warn" if retrains and "not the developer" in what else "pass",
                     f"re-ran {stages} on {what}: {agreed} metric(s) agree with the committed ones{unread}", notes)
    details = [f"{d.name}: committed {format_value(d.committed)}, recomputed {format_value(d.recomputed)}" for d in found]
    cause = ("They were edited by hand or produced by code that is not in this PR: run `dvc repro` and commit the "
             "metrics it writes.")
    if ctx.cfg.model_path and dvcrepo.unlinked_model(ctx.repo, ctx.eval_stages, ctx.cfg.model_path):
        cause = (f"{stages} does not list {ctx.cfg.model_path} among its deps in dvc.yaml, so `dvc repro` does not re-run "
                 "it when the model changes, and the committed metrics may be an older model's: run `dvc repro -f "
                 f"{' '.join(ctx.eval_stages)}` and commit the metrics it writes (add the model to its deps to have "
                 "`dvc repro` do it).")
    summary = f"the committed metrics do not match what {stages} computes from {what} ({'; '.join(details[:5])}). {cause}"
    return Check("re-evaluation", "Re-evaluation", "fail", summary, details + notes)


def step_model_load(ctx: Context) -> None:
    """What loading the PR's artifacts would run, told from their bytes before anything loads them.
    A pickle-family file (pickle, joblib, a torch archive) calls the functions it names when it is
    loaded, and the evaluation, the base's included, loads it: a model that calls `os.system` or
    `exec` could write its own metrics. Such a file fails the validation and is never loaded; a file
    that names functions the base's version of it does not is marked for a maintainer's review."""
    if not _passed(ctx, "pull"):
        return
    with gha.group("what loading the PR's model runs"):
        # the model lockstep.yaml names, whatever the PR's dvc.yaml says of it (a pickle moved into git)
        paths = dict.fromkeys([*dvcrepo.evaluation_inputs(ctx.repo, ctx.eval_stages, ctx.cfg.model_path),
                               *([os.path.normpath(ctx.cfg.model_path)] if ctx.cfg.model_path else [])])
        scans = {path: modelscan.scan(ctx.project / path) for path in paths if (ctx.project / path).exists()}
        ctx.scanned = set(scans)
        scans = {path: scan for path, scan in scans.items() if scan.files}
        if not scans:
            return  # nothing the evaluation reads runs code when loaded
        title = "Model loading"
        dangerous = [entry for path, scan in scans.items() for entry in _dangerous(ctx.project, path, scan)]
        if dangerous:
            ctx.report.add(Check(
                "model-load", title, "fail",
                f"loading {', '.join(scans)} would run code that a model has no reason to run "
                f"({'; '.join(dangerous[:3])}): lockstep did not load it, and no evaluation ran. A model file "
                "must hold the model, not a program; save it again from the training code",
                dangerous,
            ))
            return
        unreadable = [f"{path}: {entry}" for path, scan in scans.items() for entry in scan.unreadable()]
        base, why_not = _base_scans(ctx, list(scans)) if ctx.base_available else (None, "no base commit")
        pr = modelscan.ModelScan(tuple(entry for scan in scans.values() for entry in scan.files))
        new = modelscan.new_globals(pr, base) if base is not None else []
        details = [f"{path} loads {len(scan.globals())} function(s) and class(es): {', '.join(sorted(scan.globals())[:20])}"
                   for path, scan in scans.items()]
        if unreadable or new:
            reasons = ([f"lockstep cannot tell everything loading it runs ({'; '.join(unreadable[:2])})"] if unreadable else []) + (
                [f"it loads {len(new)} function(s) or class(es) the base's version does not: {', '.join(new[:8])}"] if new else [])
            ctx.report.add(Check(
                "model-load", title, "warn",
                f"needs a maintainer's review: {'; and '.join(reasons)}. Loading a model runs what it names, "
                "so check these before merging", [*(f"new: {name}" for name in new), *unreadable, *details],
            ))
            return
        how = "only what the base's version loads" if base is not None else f"nothing known to run code ({why_not})"
        ctx.report.add(Check("model-load", title, "pass", f"{', '.join(scans)}: loading it runs {how}", details))


def _base_scans(ctx: Context, paths: list[str]) -> tuple[modelscan.ModelScan | None, str]:
    """The base's versions of these files, scanned: what a model built by trusted code loads; or
    None and why there is nothing to compare with."""
    scans = []
    def base_lock(name: str) -> str | None:
        return gitrepo.show(ctx.project, ctx.inputs.base_sha, ctx.prefix + name)

    for index, path in enumerate(paths):
        target = ctx.scratch / "base-artifacts" / str(index) / Path(path).name
        try:
            if not dvcrepo.fetch_at(ctx.repo, base_lock, path, target):
                continue
        except LockstepError as exc:
            return None, f"the base's version could not be read: {exc.message}"
        scans.append(modelscan.scan(target))
    files = tuple(entry for scan in scans for entry in scan.files)
    if not files:
        return None, "the base has no version of it to compare with"
    return modelscan.ModelScan(files), ""


def step_packages(ctx: Context) -> None:
    """The project's environment is installed from the PR's requirements, and the base's
    evaluation of the PR's model runs in it too: a PR that changes its packages is marked for a
    maintainer's review, with what changed. No check when nothing changed."""
    if not ctx.base_available:
        return
    named = projectenv.requirement_files()  # what the setup action installed from

    def reader(rev: str):
        def read(name: str) -> str | None:
            path = posixpath.normpath(ctx.prefix + name)
            return None if path.startswith("../") or path == ".." else gitrepo.show(ctx.project, rev, path)
        return read

    found = packages.changes([*named, *packages.DEFAULT_FILES], base=reader(ctx.inputs.base_sha), head=reader("HEAD"))
    ctx.packages_changed = found
    if found:
        ctx.report.add(Check(
            "packages", "Packages", "warn",
            f"needs a maintainer's review: this PR changes the packages its code, and the base's evaluation of its "
            f"model, run with ({'; '.join(found[:4])}{' …' if len(found) > 4 else ''}). A package runs its code when "
            "it is installed or imported: check them before merging",
            found,
        ))


def step_trusted_evaluation(ctx: Context) -> None:
    """When the PR changed how it evaluates (command, code, params, metrics files), or changed a
    file the evaluation may run without declaring it (`_undeclared_changes`), evaluate its model
    with the base's evaluation too; the gates judge those metrics. This runs before any of
    the PR's own code, so that code cannot have changed the environment the base's evaluation runs
    in; it is reported after the PR's re-evaluation (`_report_trusted_evaluation`)."""
    if not ctx.base_available or not _passed(ctx, "pull") or not _passed(ctx, "model-load", missing_ok=True):
        return
    with gha.group("did this PR change its evaluation?"):
        worktree = ctx.scratch / "base"
        try:
            gitrepo.add_worktree(ctx.project, ctx.inputs.base_sha, worktree)
        except LockstepError as exc:
            ctx.pending_trusted = Check("trusted-evaluation", "Trusted evaluation", "fail",
                                        f"the base commit could not be checked out to compare evaluations: {exc.message}")
            return
        try:
            _compare_evaluations(ctx, worktree / ctx.prefix, worktree)
        finally:
            gitrepo.remove_worktree(ctx.project, worktree)


def _evaluation_data_changes(ctx: Context, base_repo, base_stages: list[str]) -> list[str]:
    """The data the evaluation reads (other stages' outputs, as the base's dvc.yaml declares them;
    not the model) whose dvc.lock digest this PR changed: a test split the PR made, or replaced,
    is one its metrics are measured on."""
    model = os.path.normpath(ctx.cfg.model_path) if ctx.cfg.model_path else ""
    changes = []
    for path in dvcrepo.evaluation_inputs(base_repo, base_stages, ctx.cfg.model_path):
        if os.path.normpath(path) == model:
            continue
        output, base_md5 = dvcrepo.recorded_output(base_repo, path)
        pr_output, pr_md5 = dvcrepo.recorded_output(ctx.repo, path)
        if output and (pr_output, pr_md5) != (output, base_md5):
            change = f"md5 {base_md5[:12] or '(none)'} -> {pr_md5[:12] or '(none)'}" if pr_output == output else "no longer an output"
            entry = f"{output} ({change})"
            if entry not in changes:
                changes.append(entry)
    return changes


def _compare_evaluations(ctx: Context, base_project: Path, base_checkout: Path) -> None:
    if not (base_project / ".dvc").is_dir():
        return  # the base has no DVC project here yet: nothing to compare with
    try:
        base_repo = dvcrepo.open_repo(base_project)
        if not dvcrepo.pipeline_stages(base_repo):
            return  # nor a pipeline (its dvc.yaml files may be in sub-folders)
        base_stages = _evaluation_stages(base_repo, ctx.cfg)
        before = dvcrepo.evaluation_signature(base_repo, base_stages)
    except LockstepError as exc:
        gha.warning(f"the base's pipeline cannot be read ({exc.message}); evaluations not compared")
        return
    after = dvcrepo.evaluation_signature(ctx.repo, ctx.eval_stages)
    title = "Trusted evaluation"
    review = "needs a maintainer's review: this PR changes its evaluation"
    data = _evaluation_data_changes(ctx, base_repo, base_stages)
    if before == after:
        ctx.undeclared = _undeclared_changes(ctx, base_repo)
        if not ctx.undeclared and not ctx.packages_changed:
            # said, so that a reviewer can tell "not needed" from "did not run"
            unchanged = ("this PR changes neither how it evaluates (the evaluation stages' command, code, params and "
                         "metrics files) nor a file or package its evaluation may run that dvc.yaml does not declare")
            if data:
                ctx.pending_trusted = Check("trusted-evaluation", title, "warn", (
                    f"needs a maintainer's review: {unchanged}, but it changes the data its evaluation reads "
                    f"({'; '.join(data[:3])}): its metrics are its model's on its own data, and the base's on the base's, "
                    "so the comparison and the gates are not on the same data"), data)
            else:
                ctx.pending_trusted = Check("trusted-evaluation", title, "pass", f"not needed: {unchanged}")
            return
        changed = [f"{path} (not declared in dvc.yaml; the evaluation may import or read it)" for path in ctx.undeclared]
        review = "this PR changes files its evaluation may import or read, which dvc.yaml does not declare"
        if ctx.packages_changed:
            ctx.undeclared.append("its packages")
            review = "this PR changes what its evaluation runs beyond dvc.yaml's declared dependencies"
    else:
        changed = _signature_changes(before, after)
    if ctx.packages_changed:
        changed.append(_PACKAGES_CHANGED)
    changed += [f"{change} (the base's evaluation reads this PR's data too)" for change in data]
    if ctx.retrains:
        # The stages that evaluate also train: the base's version of them would retrain a model of
        # its own, not evaluate this PR's. Param changes are training changes here; a code change
        # cannot be told apart from an evaluation change, so it is marked for review.
        code = [change for change in changed if "(stage '" in change or "command of stage" in change or "metrics files" in change
                or "not declared in dvc.yaml" in change or change == _PACKAGES_CHANGED]
        if code:
            ctx.pending_trusted = Check(
                "trusted-evaluation", title, "warn",
                f"{', '.join(ctx.eval_stages)} trains and evaluates in one stage, and this PR changes its code "
                f"({'; '.join(code[:3])}): the base's evaluation cannot be run without retraining, so review how "
                "the metrics are computed before merging",
                code,
            )
        else:
            ctx.pending_trusted = Check("trusted-evaluation", title, "pass", (
                f"not needed: {', '.join(ctx.eval_stages)} trains and evaluates in one stage, and this PR changes only "
                "its params (a training change)"), changed)
        return
    # what the base's evaluation reads and no remote holds (`push: false`), the base's own stages
    # make again, from the PR's inputs to them; never the stage that makes the model it evaluates
    base_model = dvcrepo.output_owner(base_repo, ctx.cfg.model_path) if ctx.cfg.model_path else None
    base_remade = [name for name in dvcrepo.unpushed_producers(base_repo, base_stages)
                   if base_model is None or name != base_model.stage]
    inputs = dvcrepo.evaluation_inputs(base_repo, [*base_remade, *base_stages], ctx.cfg.model_path)
    missing = [p for p in inputs if not (ctx.project / p).exists()]
    if missing:
        ctx.pending_trusted = Check("trusted-evaluation", title, "fail",
                                    f"{review} ({'; '.join(changed[:3])}), and the base's evaluation reads "
                                    f"{', '.join(missing)}, which this PR does not provide", changed)
        return
    # what the base's dvc.yaml has its evaluation read from this PR that the Model loading check did
    # not see (the PR's dvc.yaml declares it otherwise): read before the base's code loads it
    unseen = [path for path in inputs if os.path.normpath(path) not in ctx.scanned]
    dangerous = [entry for path in unseen for entry in _dangerous(ctx.project, path, modelscan.scan(ctx.project / path))]
    if dangerous:
        ctx.pending_trusted = Check("trusted-evaluation", title, "fail",
                                    f"{review} ({'; '.join(changed[:3])}), and loading what the base's evaluation reads "
                                    f"from this PR would run code that a model has no reason to run ({'; '.join(dangerous[:3])}): "
                                    "lockstep did not run it", [*changed, *dangerous])
        return
    for path in inputs:
        _copy(ctx.project / path, base_project / path)
    dvcrepo.clear_named_metrics(base_repo, base_stages)
    base_repo.close()
    env = ctx.stage_env()
    # The PR's environment holds the PR's packages, and those built from its checkout (`-e .` in
    # requirements.txt), through which the base's evaluation would import the PR's code: the
    # base's evaluation runs in an environment of its own, from the base's requirements.
    from_checkout = projectenv.installed_from_checkout(env, gitrepo.toplevel(ctx.project))
    if from_checkout and not ctx.packages_changed:
        changed.append(f"packages installed from this PR's checkout: {', '.join(from_checkout)}" + (
            "" if "LOCKSTEP_PROJECT_REQUIREMENTS" in os.environ else
            " (outside the setup action the base's evaluation imports them from this PR's code)"))
    if (ctx.packages_changed or from_checkout) and "LOCKSTEP_PROJECT_REQUIREMENTS" in os.environ:
        ctx.base_env = True
        try:
            bin_dir = projectenv.install_base(base_project, base_checkout, ctx.scratch / "base-env")
        except LockstepError as exc:
            ctx.pending_trusted = Check("trusted-evaluation", title, "fail",
                                        f"needs a maintainer's review: {review} ({'; '.join(changed[:3])}), and the base's "
                                        f"requirements could not be installed to evaluate its model with: {exc.message}", changed)
            return
        env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(bin_dir.parent)}
    started = ended = time.monotonic()
    try:
        with gha.group(f"the base's evaluation on this PR's model: {', '.join(base_stages)}"):
            with sandbox.contained("the base's evaluation of this PR's model", ctx.guard):
                try:
                    dvcrepo.reproduce(base_project, [*base_remade, *base_stages], env=env, force=True, no_commit=True)
                finally:
                    ended = time.monotonic()
    except guardmod.Tampered:
        raise
    except LockstepError as exc:
        ctx.pending_trusted = Check("trusted-evaluation", title, "fail",
                                    f"{_for_review(review)} ({'; '.join(changed[:3])}), and the base's evaluation cannot "
                                    f"run on this PR's model: {exc.message}. If the evaluation must change for this "
                                    "model, merge that change on its own first: then it is the base's", changed)
        return
    ctx.report.times.append(Timing("trusted-evaluation", round(ended - started, 3)))
    # what the base's evaluation wrote judges; metrics other stages wrote (a training run's dvclive
    # folder, committed) are the PR's own, not the base commit's
    evaluated = dvcrepo.open_repo(base_project)
    written = dvcrepo.metrics_written_by(evaluated, base_stages)
    read = dvcrepo.read_metrics(evaluated, files=ctx.cfg.metrics_files)
    ctx.trusted = read.only(written) if written else read
    ctx.pending_trusted = Check(
        "trusted-evaluation", title, "warn",
        f"{review} ({'; '.join(changed[:3])}). The gates judge this PR's model by the base's evaluation; "
        "its own evaluation applies to the PRs after it is merged",
        list(changed),  # the side by side goes first once the PR's own evaluation has run
    )


_PACKAGES_CHANGED = "the project's packages (the Packages check lists them)"


def _for_review(review: str) -> str:
    prefix = "needs a maintainer's review: "
    return review if review.startswith(prefix) else prefix + review

# What a pull request may change without its evaluation running it: DVC's own files, docs, the
# repository's workflows (see _undeclared_changes).
_INERT_NAMES = frozenset({"dvc.yaml", "dvc.lock", ".gitignore", ".dvcignore"})
_INERT_SUFFIXES = (".dvc", ".md", ".rst")
_VALUE_SUFFIXES = (".yaml", ".yml", ".json", ".toml")  # a params file in one of these holds values, not code


def _undeclared_changes(ctx: Context, base_repo) -> list[str]:
    """Files this PR adds, changes or removes that its evaluation stages do not declare but may
    import or read, from the repository's root. DVC compares only what dvc.yaml lists: a helper
    module the evaluation script imports is code as much as the script, and a module beside the
    script shadows the library of the same name (a `csv.py` beside `evaluate.py` is what
    `import csv` gets). Left out: DVC's own files and the pipeline's outputs, metrics, plots and
    params files, as the BASE declares them (the PR's dvc.yaml could declare its `csv.py` an
    output), params files' values (the evaluation's own params are compared in its signature),
    lockstep.yaml (the base's judges), the requirement files (the Packages check shows those),
    docs, and `.github/`."""
    prefix = ctx.prefix
    inert = {posixpath.normpath(ctx.inputs.config_path or configmod.CONFIG_NAME), *packages.DEFAULT_FILES,
             *(posixpath.normpath(name) for name in projectenv.requirement_files())}
    inert |= {path for path in dvcrepo.params_files(base_repo) if path.endswith(_VALUE_SUFFIXES)}
    declared = [*dvcrepo.all_outputs(base_repo), *dvcrepo.all_metrics_files(base_repo), *dvcrepo.top_level_files(base_repo)]
    outputs = [path.rstrip("/") + "/" for path in declared if not path.endswith(".py")]
    found = []
    for path in gitrepo.changed_files(ctx.project, ctx.inputs.base_sha, "HEAD"):
        name = posixpath.basename(path)
        if path.startswith(".github/") or name in _INERT_NAMES or path.endswith(_INERT_SUFFIXES):
            continue
        rel = posixpath.relpath(path, prefix.rstrip("/") or ".")
        if rel in inert or rel.startswith(".dvc/") or any((rel + "/").startswith(out) for out in outputs):
            continue
        found.append(path)
    return found


def _signature_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two evaluation signatures, said per stage (stage addresses may hold dots
    and colons: `pipelines/dvc.yaml:evaluate`). A params change names no stage: when the stages also
    train, a params change is a training change."""
    changes = []
    if before.get("metrics") != after.get("metrics"):
        changes.append("the metrics files changed")
    for stage in sorted((set(before) | set(after)) - {"metrics"}):
        old, new = before.get(stage) or {}, after.get(stage) or {}
        if old.get("cmd") != new.get("cmd"):
            changes.append(f"the command of stage '{stage}' changed")
        old_code, new_code = old.get("code") or {}, new.get("code") or {}
        changes += [f"{path} changed (stage '{stage}')" for path in sorted(set(old_code) | set(new_code))
                    if old_code.get(path) != new_code.get(path)]
        old_params, new_params = old.get("params") or {}, new.get("params") or {}
        for file in sorted(set(old_params) | set(new_params)):
            a, b = old_params.get(file), new_params.get(file)
            a, b = (a if isinstance(a, dict) else {"": a}), (b if isinstance(b, dict) else {"": b})
            changes += [f"{file}:{key} changed ({a.get(key)!r} -> {b.get(key)!r})" if key else f"{file} changed"
                        for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return list(dict.fromkeys(changes)) or ["the evaluation stages changed"]


def _copy(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False)
    else:
        shutil.copy2(source, target)


def step_read_before(ctx: Context) -> None:
    """What the comparison with the base reads from git, read before the PR's code runs (it could
    otherwise rewrite git's objects or the params files in the workspace)."""
    ctx.pr_params = dvcrepo.params_values(ctx.repo, ctx.project)
    if ctx.inputs.base_sha and ctx.base_available:
        ctx.base_metrics = dvcrepo.read_metrics(ctx.repo, rev=ctx.inputs.base_sha, files=ctx.cfg.metrics_files)
        ctx.base_params = _base_params(ctx)


def step_base(ctx: Context) -> None:
    with gha.group("compare with the base branch"):
        base_sha = ctx.inputs.base_sha
        if not base_sha:
            ctx.report.add(Check("base", "Base comparison", "skip", "no base commit given (not a pull request)"))
            return
        if not ctx.base_available:
            ctx.report.add(Check("base", "Base comparison", "fail",
                                 f"the base commit {base_sha[:12]} cannot be read: nothing to compare with, so no verdict"))
            return
        where = "; ".join(f"{name} from {source}" for name, source in ctx.base_metrics.sources.items())
        notes = [f"{name}: {why}" for name, why in ctx.base_metrics.problems.items()]
        if not ctx.base_metrics.values:
            ctx.report.add(Check("base", "Base comparison", "warn",
                                 f"the base commit {base_sha[:12]} has no metrics to compare with (first model?)", notes))
            return
        ctx.report.add(Check("base", "Base comparison", "pass",
                             f"compared with base {base_sha[:12]}: {len(ctx.base_metrics.values)} metric(s) ({where})", notes))


def step_gates(ctx: Context) -> None:
    with gha.group("gates"):
        dvcrepo.harmonize(ctx.base_metrics, ctx.committed, ctx.recomputed, ctx.trusted)
        base = ctx.base_metrics.values
        pr = ctx.pr_metrics
        ctx.report.params = [(d.name, d.base, d.new) for d in diff(ctx.base_params, ctx.pr_params) if d.changed]
        gates = check_gates(ctx.cfg.gates, pr, base)
        failed = [g for g in gates if not g.passed]
        # the committed metrics, which a failed check left unverified: a pass on them is no pass
        unverified = [c.title for c in ctx.report.checks if c.status == "fail"
                      and c.id in ("lock-vs-code", "lock-vs-remote", "pull", "re-evaluation")] \
            if ctx.recomputed is None and ctx.trusted is None else []
        if unverified:  # a metric the failed check left unreadable (not pushed) is not judged missing either
            failed = [g for g in failed if not all(r.startswith(MISSING_METRIC) for r in g.reasons)]
        shown = failed if unverified else gates
        ctx.report.metrics = metric_rows(diff(base, pr), shown, {g.metric: g.direction for g in ctx.cfg.gates})
        if not gates:
            ctx.report.add(Check("gates", "Gates", "skip", f"no gates configured in {ctx.cfg.source}"))
            return
        if unverified and not failed:
            ctx.report.add(Check("gates", "Gates", "skip", f"not judged: the metrics are the committed ones, which CI could not "
                                 f"verify ({', '.join(unverified)} failed)"))
            return
        # gates on metrics no evaluation stage writes judge the committed values: said, for the reviewer
        read = ctx.recomputed or ctx.committed
        written = set(dvcrepo.metrics_written_by(ctx.repo, ctx.eval_stages)) if ctx.eval_stages else set()
        committed_only = [g.metric for g in gates if written and read.source_of(g.metric) not in ("", *written)]
        note = ([f"{', '.join(committed_only)}: the committed value; no evaluation stage writes it, so CI does not "
                 "recompute it (`lockstep init` gates only what the evaluation writes)"] if committed_only else [])
        if not failed and committed_only:
            # a pass on numbers the pull request wrote itself is not CI's verdict: for a maintainer to weigh
            ctx.report.add(Check("gates", "Gates", "warn",
                                 f"all {len(gates)} gate(s) of {ctx.cfg.source} passed, {', '.join(committed_only)} on the value "
                                 "the pull request committed, which CI does not recompute: a maintainer's review decides", note))
            return
        if not failed:
            ctx.report.add(Check("gates", "Gates", "pass", f"all {len(gates)} gate(s) of {ctx.cfg.source} passed", note))
            return
        details = [f"{g.metric}: {'; '.join(g.reasons)}" for g in failed]
        ctx.report.add(Check("gates", "Gates", "fail", f"{len(failed)} of {len(gates)} gate(s) failed: {'; '.join(details)}",
                             details + note))


def step_review_view(ctx: Context) -> None:
    """What a reviewer reads beside the verdict, and never part of it: every plot DVC knows, base
    vs PR (the workspace after re-evaluation), the DVC-tracked data and models the PR changed,
    and the training time where dvclive recorded it. Nothing here can fail the validation."""
    with gha.group("plots and data, base vs PR"):
        report = ctx.report
        base = ctx.inputs.base_sha if ctx.base_available else ""
        try:
            reads = dvcrepo.read_plots(ctx.repo, base or None)
        except LockstepError as exc:
            reads = []
            report.plots_note = exc.message
        report.plots = review.plots_view(reads)
        if reads:
            ctx.plots_html = review.plots_html(
                reads, title=f"lockstep plots: {report.project}",
                base_label=f"base {base[:12]}" if base else "no base commit",
                pr_label=f"PR head {report.head_sha[:12]}" + (" (after re-evaluation in CI)" if ctx.recomputed else ""),
            )
            report.plots_file = PLOTS_FILE
        report.times += review.training_time(reads)
        gha.info(f"{len(report.plots)} plot(s), {sum(p.changed for p in report.plots)} changed")
        if not base:
            report.data_note = "no base commit to compare with" if not ctx.inputs.base_sha else "the base commit cannot be read"
            return
        try:
            report.data = review.data_rows(dvcrepo.data_diff(ctx.repo, base, "HEAD"))
            report.data_compared = True
        except LockstepError as exc:
            report.data_note = exc.message


def step_mlflow(ctx: Context) -> None:
    with gha.group("MLflow"):
        if not tracking.configured():
            ctx.report.add(Check("mlflow", "MLflow", "skip", "MLFLOW_TRACKING_URI is not set: no run was logged"))
            return
        report, inputs = ctx.report, ctx.inputs
        repository = lineage.repository(inputs.repository) or "local"
        experiment = lineage.experiment_name(inputs.experiment or ctx.cfg.experiment, repository, report.project)
        tags = {
            lineage.KIND: "pr-validation",
            lineage.PR: report.pr_number,
            lineage.HEAD_SHA: report.head_sha,
            lineage.BASE_SHA: report.base_sha,
            lineage.DVC_LOCK_SHA256: report.lock_digest,
            lineage.VERSION: __version__,
            lineage.WORKFLOW_RUN_URL: report.workflow_run_url,
            lineage.VERDICT: "pass" if report.passed else "fail",
            lineage.PROJECT: report.project,
        }
        try:
            tracker = ctx.tracker if ctx.tracker is not None else tracking.Tracker(retries=1, timeout=10)
            run_id = tracker.start_run(experiment, f"pr-{report.pr_number or 'local'}-{report.head_sha[:8]}", tags)
            try:
                tracker.log(run_id, params=ctx.pr_params, metrics=ctx.pr_metrics)
                if ctx.trusted is not None and ctx.recomputed is not None:  # the PR's own evaluation, beside
                    own = {f"{PR_EVALUATION_PREFIX}{name}": value for name, value in ctx.recomputed.values.items()}
                    tracker.log(run_id, metrics=own)
                forwarded = tracker.forward_local_runs(ctx.local_mlflow, run_id)
                report.mlflow_run_id = run_id
                report.mlflow_run_url = tracker.run_url(run_id)
                report_dir = ctx.scratch / "mlflow-report"
                report_dir.mkdir(parents=True, exist_ok=True)
                (report_dir / "report.md").write_text(render(report), "utf-8")
                tracker.log_files(run_id, [report_dir / "report.md"], "lockstep")
            except LockstepError:
                tracker.end_run_quietly(run_id, "FAILED")
                raise
            tracker.end_run(run_id, "FINISHED" if report.passed else "FAILED")
        except LockstepError as exc:
            ctx.report.add(Check("mlflow", "MLflow", "warn", f"the run was not logged: {exc.message}", [exc.hint]))
            return
        extra = f"; what the project's code logged is in {forwarded} child run(s) of it" if forwarded else ""
        ctx.report.add(Check("mlflow", "MLflow", "pass", f"logged run {run_id} in experiment {experiment}{extra}"))


# MLflow metrics of the PR's own evaluation, when the base's evaluation judged it
PR_EVALUATION_PREFIX = "pr_evaluation."


STEPS = (
    step_config,
    step_lock_vs_code,
    step_lock_vs_remote,
    step_pull,
    # before the PR's code: what the verdict trusts
    step_model_load,
    step_packages,
    step_trusted_evaluation,
    step_read_before,
    # the PR's code, each command checked by the guard when it ends
    step_tests,
    step_reevaluate,
    # after
    step_base,
    step_gates,
    step_review_view,
    step_mlflow,
)


# --- helpers ------------------------------------------------------------------------------------


def _passed(ctx: Context, *ids: str, missing_ok: bool = False) -> bool:
    for check_id in ids:
        check = ctx.report.check(check_id)
        if check is None:
            if missing_ok:
                continue
            return False
        if check.status in ("fail", "skip"):
            return False
    return True


def _model_stage(ctx: Context) -> str:
    if not ctx.cfg.model_path:
        return ""
    owner = dvcrepo.output_owner(ctx.repo, ctx.cfg.model_path)
    return owner.stage if owner is not None else ""


def _evaluation_stages(repo, cfg: configmod.Config) -> list[str]:
    stages = dvcrepo.evaluation_stages(repo, cfg.evaluation_stages, cfg.model_path)
    training = [] if cfg.evaluation_stages else [s for s in dvcrepo.metrics_owners(repo) if s not in stages]
    if training and stages:
        gha.info(f"evaluation stages: {', '.join(stages)}; {', '.join(training)} also write(s) metrics but train(s) the "
                 "model or run(s) before it, so they are not re-run (set evaluation.stages in lockstep.yaml to choose)")
    if not stages:
        raise ConfigError(
            "no evaluation stage: no stage in dvc.yaml writes a metrics file DVC knows",
            hint="set evaluation.stages in lockstep.yaml, or declare `metrics:` in dvc.yaml (on the stage or at the top level)",
            file=cfg.source,
        )
    return stages




def _base_params(ctx: Context) -> dict[str, Any]:
    if not ctx.base_available:
        return {}
    params: dict[str, Any] = {}
    for name in dvcrepo.params_files(ctx.repo):
        text = gitrepo.show(ctx.project, ctx.inputs.base_sha, ctx.prefix + name)
        if text is not None:
            params.update(dvcrepo.params_keys(text, name))
    return params


def _write(report: Report, report_dir: Path, plots_html: str = "", steps: list[tuple[str, float]] | None = None) -> ValidateResult:
    report_dir.mkdir(parents=True, exist_ok=True)
    report_path = report_dir / "report.md"
    results_path = report_dir / "results.json"
    report_path.write_text(render(report), "utf-8")
    results_path.write_text(_with_steps(report.to_json(), steps or []), "utf-8")
    plots_path = report_dir / PLOTS_FILE
    if plots_html:
        plots_path.write_text(plots_html, "utf-8")
    elif plots_path.exists():
        plots_path.unlink()  # a page from an earlier run would show other plots
    return ValidateResult(report, report_path, results_path, list(steps or []))


def _with_steps(results: str, steps: list[tuple[str, float]]) -> str:
    """results.json with `steps`: the wall seconds of each validation step, in order, on one line
    (for a phase breakdown; the comment does not show them, and reading a report back ignores them)."""
    if not steps:
        return results
    body = results.rstrip()
    if not body.endswith("}"):
        raise ValueError("the report's JSON is not an object")
    entries = json.dumps([{"id": name, "seconds": seconds} for name, seconds in steps])
    return f'{body[:-1].rstrip()},\n  "steps": {entries}\n}}\n'
