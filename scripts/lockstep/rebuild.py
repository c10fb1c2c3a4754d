"""Main rebuilds: the official model is built by CI, never taken from a developer's machine.

  1. pull the inputs of the rebuilt stages only, and the outputs they keep while they re-run
     (`persist: true`) except the model stage's: that stage trains from scratch
  2. create the MLflow run, offer it to the project's code as LOCKSTEP_MLFLOW_RUN_ID, force the stages
  3. dvc push, then verify every object of the new lock is in the remote
  4. commit dvc.lock (and git-carried outputs) with [skip ci]; push without force, rebasing on a
     moved branch unless the new commits changed the rebuilt stages' inputs
  5. register the CI-built model once per lock (idempotent), alias it, maybe promote it
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, bytecode, config as configmod, dvcrepo, gha, gitrepo, lineage, procenv, projectenv, provenance, registry, tracking
from .errors import ConfigError, DvcError, InputError, LockstepError
from .metrics import check_gates, parse_file_or_empty


@dataclass
class RebuildInputs:
    project_dir: Path
    config_path: str = ""
    stages: list[str] = field(default_factory=list)
    force_all: bool = False
    set_params: list[str] = field(default_factory=list)
    reason: str = ""
    trigger: str = "push"
    actor: str = ""
    branch: str = "main"
    repository: str = ""
    experiment: str = ""
    push: bool = True
    register: bool = True
    register_unchanged: bool = False
    workflow_run_url: str = ""
    promote: bool = True  # false: promotion is left to the approved `lockstep promote` job


@dataclass
class RebuildResult:
    stages: list[str]
    lock_commit: str = ""
    committed: bool = False
    mlflow_run_id: str = ""
    model_name: str = ""
    model_version: str = ""
    model_alias: str = ""
    promoted: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    version_created: bool = False
    unchanged_since: str = ""  # the version this rebuild reproduced byte for byte (none registered)
    model_sha256: str = ""  # provenance.sha256 of the rebuilt model (a file, or a folder's manifest)
    model_path: str = ""  # the model's path from the repository root (the attestation's subject)
    model_kind: str = ""  # "file" | "directory"
    card: str = ""  # the model card (Markdown) of the registered version
    promotion_note: str = ""  # why promote-to did not move although the gates passed
    history: str = ""  # the alias history section (Markdown)
    start_commit: str = ""  # the commit the rebuild started from
    unchanged_commit: str = ""  # that version's lock commit
    changed_outputs: list[dvcrepo.OutputChange] = field(default_factory=list)  # start commit's lock -> rebuilt lock

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}" if self.model_version else ""

    def outputs(self) -> dict[str, object]:
        return {
            "stages": " ".join(self.stages),
            "lock-commit": self.lock_commit,
            "committed": self.committed,
            "mlflow-run-id": self.mlflow_run_id,
            "model-name": self.model_name,
            "model-version": self.model_version,
            "model-alias": self.model_alias,
            "model-uri": self.model_uri,
            "promoted": self.promoted,
            "unchanged-since": self.unchanged_since,
            "model-sha256": self.model_sha256,
            "model-path": self.model_path,
            "model-kind": self.model_kind,
        }


def model_stage(repo, cfg: configmod.Config) -> str:
    if not cfg.model_path:
        if cfg.model_stage:
            return dvcrepo.stage_named(repo, cfg.model_stage).address
        raise ConfigError(
            f"{cfg.source}: model.path is not set",
            hint="add a `model:` section with `name` and `path` (the model file, an output in dvc.yaml)",
            file=cfg.source,
        )
    owner = dvcrepo.output_owner(repo, cfg.model_path)
    if owner is None:
        line = cfg.line_of("model", "path")
        raise ConfigError(
            f"{cfg.source}:{line}: model.path: {cfg.model_path!r} is not an output of any stage in dvc.yaml",
            hint="set model.path to a path listed under `outs:` of the training stage",
            file=cfg.source,
            line=line,
        )
    if not owner.stage:
        line = cfg.line_of("model", "path")
        raise InputError(
            f"{cfg.source}:{line}: model.path: {cfg.model_path!r} is added with `dvc add` ({owner.dvcfile}), and no stage in "
            "dvc.yaml retrains it: a main rebuild has nothing to rebuild, and stopped before pulling, pushing, committing or "
            "registering anything",
            hint="to have CI retrain the model, make its training a stage: `dvc remove "
                 f"{owner.dvcfile}`, then `dvc stage add -n train -d <training code and data> -o {owner.path} <training command>`, "
                 "`dvc repro` and commit dvc.yaml and dvc.lock. PR validation needs no stage: it re-evaluates the added model "
                 "as it is. Until then, do not call main-rebuild.yml",
            file=cfg.source,
            line=line,
        )
    if cfg.model_stage and owner.stage != dvcrepo.stage_named(repo, cfg.model_stage).address:
        line = cfg.line_of("model", "stage")
        raise ConfigError(
            f"{cfg.source}:{line}: model.stage: {cfg.model_path!r} is produced by stage '{owner.stage}', not '{cfg.model_stage}'",
            hint=f"set model.stage to '{owner.stage}' or remove it",
            file=cfg.source,
            line=line,
        )
    return owner.stage


def plan(repo, cfg: configmod.Config, inputs: RebuildInputs) -> list[str]:
    """Which stages to force, in run order. A frozen stage (`dvc freeze`) is not rebuilt, as
    `dvc repro` does not rebuild it: its outputs are pulled as inputs. A frozen model stage is an
    error: the rebuild would retrain nothing."""
    if inputs.force_all:
        stages = dvcrepo.pipeline_stages(repo)
    else:
        roots = inputs.stages or list(cfg.rebuild_stages or []) or [model_stage(repo, cfg)]
        stages = dvcrepo.downstream(repo, roots)
    frozen = [stage for stage in stages if stage.frozen]
    model = model_stage(repo, cfg) if cfg.model_path or cfg.model_stage else ""
    asked = set(inputs.stages or ())
    named = [stage.address for stage in frozen if stage.address == model or {stage.name, stage.address} & asked]
    if named:
        raise InputError(
            f"stage {', '.join(named)} is frozen (`dvc freeze`): `dvc repro` does not rebuild it, and neither does lockstep",
            hint=f"unfreeze it (`dvc unfreeze {' '.join(named)}`, then commit dvc.yaml) to have CI rebuild it",
            file="dvc.yaml",
        )
    if frozen:
        gha.info(f"not rebuilt, frozen (`dvc freeze`): {', '.join(s.address for s in frozen)}; their outputs are "
                 "pulled as dvc.lock records them")
    rebuilt = [stage.address for stage in stages if not stage.frozen]
    unlinked: list[str] = []
    if model in rebuilt:  # an evaluation that reads the model without declaring it is not downstream of it
        evaluation = dvcrepo.evaluation_stages(repo, cfg.evaluation_stages, cfg.model_path)
        unlinked = [name for name in evaluation if dvcrepo.unlinked_model(repo, [name], cfg.model_path or "")]
        if unlinked:
            gha.info(f"run after the training: {', '.join(unlinked)}, which evaluate(s) {cfg.model_path} without "
                     "listing it among its deps in dvc.yaml (add it there, and `dvc repro` re-runs it too)")
    # what they read and no remote holds (`push: false`) is made again first, as on the developer's machine
    remade = set(dvcrepo.unpushed_producers(repo, [*rebuilt, *unlinked]))
    if remade:
        gha.info(f"also run: {', '.join(sorted(remade))}, which make{'s' if len(remade) == 1 else ''} "
                 f"{', '.join(dvcrepo.unpushed_outputs(repo, sorted(remade)))} (`push: false` in dvc.yaml: no remote holds it)")
    ordered = [stage.address for stage in dvcrepo.pipeline_stages(repo)
               if (stage.address in remade or stage.address in rebuilt) and stage.address not in unlinked]
    ordered = [*ordered, *unlinked]  # DVC's order does not put an evaluation the graph does not link after the training
    return _without_skipped(repo, cfg, inputs, ordered, model)


def _without_skipped(repo, cfg: configmod.Config, inputs: RebuildInputs, stages: list[str], model: str) -> list[str]:
    """The stages to run without those `rebuild.skip-stages` names and those downstream of them
    (a registering or deploying stage: the rebuild registers the model itself, with lineage). The
    model's stage and the evaluation stages cannot be skipped: there would be nothing to register."""
    if not cfg.rebuild_skip_stages:
        return stages
    line = cfg.line_of("rebuild", "skip-stages")
    try:
        skipped = {stage.address for stage in dvcrepo.downstream(repo, cfg.rebuild_skip_stages)}
    except DvcError as exc:
        raise ConfigError(f"{cfg.source}:{line}: rebuild.skip-stages: {exc.message}", hint=exc.hint, file=cfg.source,
                          line=line) from exc
    needed = [model] if model else []
    needed += dvcrepo.evaluation_stages(repo, cfg.evaluation_stages, cfg.model_path) if cfg.model_path else []
    kept = [name for name in needed if name in skipped]
    if kept:
        raise ConfigError(
            f"{cfg.source}:{line}: rebuild.skip-stages skips {', '.join(kept)}, which a rebuild needs: it trains or "
            "evaluates the model it registers (a skipped stage's downstream stages are skipped too)",
            hint="list only the stages after the evaluation that have side effects (registering, deploying)",
            file=cfg.source, line=line)
    asked = [name for name in inputs.stages or () if dvcrepo.stage_named(repo, name).address in skipped]
    if asked:
        raise InputError(
            f"stage {', '.join(asked)} was asked for, and {cfg.source} skips it in rebuilds (rebuild.skip-stages)",
            hint="run the rebuild without it, or remove it from rebuild.skip-stages", file=cfg.source, line=line)
    left = [name for name in stages if name in skipped]
    if left:
        gha.info(f"not run: {', '.join(left)} (rebuild.skip-stages in {cfg.source}, and what depends on it); "
                 "their dvc.lock entries stay as they were")
    return [name for name in stages if name not in skipped]


def run(inputs: RebuildInputs) -> RebuildResult:
    """Every decision (stages, what to commit, MLflow names) is made before anything is pushed,
    and the MLflow run ends FINISHED or FAILED on every path."""
    # MLflow is imported in a child meanwhile, on another core, while the rebuild plans and pulls
    tracker = tracking.TrackerProcess() if tracking.configured() and inputs.register else None
    try:
        return _run(inputs, tracker)
    finally:
        if tracker is not None:
            tracker.close()


def _run(inputs: RebuildInputs, tracker: Any) -> RebuildResult:
    project = inputs.project_dir.resolve()
    if not project.is_dir():
        raise InputError(f"working-directory {inputs.project_dir}: no such folder", hint="point `working-directory` at the DVC project")
    cfg = configmod.load(project, inputs.config_path or None)
    changed_params: dict[str, Any] = {}
    repo = dvcrepo.open_repo(project)
    if cfg.model_path:
        model_stage(repo, cfg)  # a model no stage builds stops the rebuild before anything, params set included
    hydra = _composition(repo)
    if inputs.set_params or hydra is not None:
        changed_params = _set_params(project, repo, hydra, inputs.set_params)
        for key, (old, new) in changed_params.items():
            gha.info(f"set {key}: {old!r} -> {new!r}")
        repo.close()
        repo = dvcrepo.open_repo(project)
    stage_names = plan(repo, cfg, inputs)
    result = RebuildResult(stages=stage_names)
    start_sha = gitrepo.head(project)
    result.start_commit = start_sha
    repository = lineage.repository(inputs.repository)
    label = lineage.project_label(gitrepo.prefix_of(project), repository, project)
    gha.info(f"rebuilding {', '.join(stage_names)} of {label} from {start_sha[:12]}")

    # Decide what the commit will hold before anything is pushed: outputs that git carries, except
    # those the project's .gitignore keeps out of git (dvc.lock records their hashes all the same).
    commit_paths, ignored = _commit_plan(project, repo, stage_names, changed_params)
    if hydra is not None and dvcrepo.HYDRA_OUTPUT not in commit_paths:
        commit_paths.append(dvcrepo.HYDRA_OUTPUT)  # recomposed: committed with the lock when it changed
    for path, rule in ignored.items():
        gha.info(f"{path} is not committed: {rule} ignores it (dvc.lock records its hash)")
    code_folders = dvcrepo.code_folders(repo, stage_names)

    with gha.group("1. pull the inputs of the rebuilt stages"):
        targets = dvcrepo.dep_outputs(repo, stage_names)
        kept = _persisted_to_restore(repo, cfg, stage_names)
        fetched = dvcrepo.pull(repo, targets + kept)
        gha.info(f"pulled {', '.join(targets) or 'nothing'} ({fetched} file(s) in all); outputs being rebuilt were not downloaded"
                 + (f", except those their stages keep while they re-run (`persist: true`), as dvc.lock records them: "
                    f"{', '.join(kept)}" if kept else ""))

    if tracker is not None:
        result.mlflow_run_id = tracker.start_run(
            lineage.experiment_name(inputs.experiment or cfg.experiment, repository or "local", label),
            f"rebuild-{start_sha[:8]}",
            {
                lineage.KIND: "main-rebuild",
                lineage.TRIGGER: inputs.trigger,
                lineage.REASON: inputs.reason,
                lineage.ACTOR: inputs.actor,
                lineage.START_COMMIT: start_sha,
                lineage.STAGES: " ".join(stage_names),
                lineage.VERSION: __version__,
                lineage.WORKFLOW_RUN_URL: inputs.workflow_run_url,
                lineage.PROJECT: label,
            },
        )
    try:
        _build_and_publish(inputs, cfg, project, stage_names, result, tracker, commit_paths, code_folders, start_sha,
                           repository, label)
    except BaseException:
        if tracker and result.mlflow_run_id:
            tracker.end_run_quietly(result.mlflow_run_id, "FAILED")
        raise
    bytecode.keep_for_cache()
    return result


def _composition(repo) -> dvcrepo.Hydra | None:
    """The Hydra composition a rebuild makes before reproducing, as `dvc exp run` would: None when
    the project has none, or when lockstep does not compose it (said: the stages then run on the
    committed params.yaml, as `dvc repro` would)."""
    hydra = dvcrepo.hydra_settings(repo)
    if hydra is not None and hydra.refused:
        gha.warning(f"params.yaml is not composed from {hydra.describe()} (DVC's Hydra integration): {hydra.refused}. The "
                    "stages run on the committed params.yaml, as `dvc repro` runs them", title="lockstep rebuild")
        return None
    return hydra


def _set_params(project: Path, repo, hydra: dvcrepo.Hydra | None, assignments: list[str]) -> dict[str, Any]:
    """Apply `set-params`. With a Hydra composition, params.yaml is composed from the config
    first, its assignments as Hydra overrides (what `dvc exp run -S` does), and the other params
    files are edited in place."""
    for assignment in assignments:
        file = dvcrepo.params_file_of(assignment.partition("=")[0].strip())
        owner = dvcrepo.output_owner(repo, file) if file != dvcrepo.HYDRA_OUTPUT or hydra is None else None
        if owner is not None and owner.stage:
            raise InputError(
                f"set-params: {file} is an output of stage '{owner.stage}' in dvc.yaml, which the pipeline writes (tuned "
                f"values, a search's best parameters): {assignment.partition('=')[0].strip()} set there would be "
                "overwritten when that stage re-runs, or judged as if a person chose it",
                hint="set the params that stage reads instead (its own params file), in set-params or a reviewed commit",
                file="dvc.yaml",
            )
    if hydra is None:
        return dvcrepo.set_params(project, assignments, allowed=dvcrepo.params_files(repo))
    mine = [a for a in assignments if dvcrepo.params_file_of(a.partition("=")[0].strip()) == dvcrepo.HYDRA_OUTPUT]
    changed = dvcrepo.compose_params(project, hydra, mine)
    gha.info(f"composed params.yaml from {hydra.describe()}" + (f" with {' '.join(mine)}" if mine else "")
             + (": it differs from the committed one" if dvcrepo.HYDRA_OUTPUT in gitrepo.modified(project) else ": unchanged"))
    others = [a for a in assignments if a not in mine]
    if others:
        changed.update(dvcrepo.set_params(project, others, allowed=dvcrepo.params_files(repo)))
    return changed


def _persisted_to_restore(repo, cfg: configmod.Config, stage_names: list[str]) -> list[str]:
    """The `persist: true` outputs of the rebuilt stages to pull before they re-run, as the lock
    being rebuilt records them: DVC keeps such an output while its stage runs, and a collecting
    stage (scraped records, a growing feature store) adds to it; run on nothing, it would commit
    only its new batch. Those of the model stage and of the evaluation stages are not restored, and
    removed if the checkout has them (git-carried): the copy in the merged lock is the developer's,
    and the rebuild never builds its model or its metrics (which decide promotion) on it. A
    persisted output missing from the remote stops the rebuild here, before any stage runs."""
    persisted = dvcrepo.persisted_outputs(repo, stage_names)
    if not persisted:
        return []
    model = model_stage(repo, cfg) if cfg.model_path or cfg.model_stage else ""
    fresh = {model, *dvcrepo.evaluation_stages(repo, cfg.evaluation_stages, cfg.model_path)} - {""}
    scratch = [out for out in persisted if out.stage in fresh]
    if scratch:
        dvcrepo.remove_persisted(repo, sorted({out.stage for out in scratch}))
    trained = [out.path for out in scratch if out.stage == model]
    if trained:
        gha.info(f"stage '{model}' trains from scratch: its persisted output(s) {', '.join(trained)} "
                 "(`persist: true`) are not restored, because the copy dvc.lock records is the developer's and the "
                 "rebuild never builds on the developer's model; a developer's `dvc repro` resumes from it")
    scored = [out for out in scratch if out.stage != model]
    if scored:
        gha.info(f"the evaluation starts from its declared inputs: the persisted output(s) "
                 f"{', '.join(f'{o.path} (stage {o.stage!r})' for o in scored)} (`persist: true`) are not restored, "
                 "because the copy dvc.lock records is the developer's and the rebuilt metrics decide promotion")
    kept = [out for out in persisted if out.stage not in fresh and out.cached]
    new = [out for out in kept if not out.md5]
    for out in new:
        gha.info(f"{out.path} (`persist: true`, stage '{out.stage}') has no entry in dvc.lock yet: the stage runs "
                 "without it, as on a fresh clone")
    restore = [out for out in kept if out.md5]
    if not restore:
        return []
    check = dvcrepo.verify_remote(repo, sorted({out.stage for out in restore}), outputs=[out.path for out in restore])
    if not check.ok:
        missing = {os.path.normpath(path): members for path, members in check.missing_outputs().items()}
        named = [out for out in restore if os.path.normpath(out.path) in missing]
        said = "; ".join(_missing_persisted(out, missing[os.path.normpath(out.path)]) for out in named)
        raise DvcError(
            f"the persisted output(s) (`persist: true`) the rebuilt stages keep while they re-run are not in "
            f"{check.remote} as dvc.lock records them: {said}. Run without them, the stages would start from nothing "
            "and the rebuild would commit only what they add this time",
            hint=f"push them from the machine that last ran the stage (`dvc push {' '.join(o.path for o in named)}`) "
                 "and re-run the job; lockstep ran, pushed, committed and registered nothing",
            file="dvc.yaml",
        )
    return [out.path for out in restore]


def _missing_persisted(out: dvcrepo.Output, members: list[str]) -> str:
    what = "" if members == ["(the whole output)"] else f", {len(members)} of its files ({', '.join(members[:3])}" + (
        " …)" if len(members) > 3 else ")")
    return f"{out.path} of stage '{out.stage}' (md5 {out.md5[:12]}{what})"


def _bytecode_elsewhere(folders: list[str], env: dict[str, str]) -> Path | None:
    """When the rebuilt stages depend on a whole code folder, send the bytecode their Python writes
    to a folder of its own (`PYTHONPYCACHEPREFIX`), not into that folder: DVC hashes every file of
    it, so dvc.lock would record CI's `__pycache__`, which no checkout has, and every pull request
    after this rebuild would find the lock stale. A prefix the project sets itself is kept."""
    if not folders or env.get("PYTHONPYCACHEPREFIX"):
        return None
    prefix = Path(tempfile.mkdtemp(prefix="lockstep-pycache-", dir=os.environ.get("RUNNER_TEMP") or None))
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    gha.info(f"the stages depend on the folder(s) {', '.join(folders)}: Python's bytecode goes to a folder of its own "
             "while they run, so that dvc.lock records what git has there")
    return prefix


def _build_and_publish(inputs: RebuildInputs, cfg: configmod.Config, project: Path, stage_names: list[str],
                       result: RebuildResult, tracker, commit_paths: list[str], code_folders: list[str],
                       start_sha: str, repository: str, label: str) -> None:
    with gha.group(f"2. dvc repro -f {' '.join(stage_names)}"):
        env = procenv.for_reviewed_code(os.environ, cfg.env, mlflow_run_id=result.mlflow_run_id or None)
        pycache = _bytecode_elsewhere(code_folders, env)
        # the versions there are before the project's code runs: one it registers itself is named after
        registered_before = _versions_now(tracker, cfg) if tracker and result.mlflow_run_id else None
        projectenv.wait_until_installed()
        fetched: list[str] = []
        try:
            while True:
                try:
                    dvcrepo.reproduce(project, stage_names, env=env, force=True)
                    break
                except DvcError as exc:
                    # a stage reads another stage's output without declaring it (PR validation does the same)
                    if not exc.undeclared or exc.undeclared in fetched or len(fetched) >= 3:
                        raise
                    fetched.append(exc.undeclared)
                    gha.warning(f"{exc.hint}. lockstep pulled {exc.undeclared} as dvc.lock records it and reproduces "
                                "again", file="dvc.yaml")
                    dvcrepo.pull(dvcrepo.open_repo(project), [exc.undeclared])
        except LockstepError as exc:
            exc.hint = f"lockstep pushed, committed and registered nothing; {exc.hint}"
            raise
        finally:
            if pycache is not None:
                bytecode.adopt(pycache)
        repo = dvcrepo.open_repo(project)
    _say_what_is_not_committed(project, commit_paths)

    result.metrics = dvcrepo.read_metrics(repo, files=cfg.metrics_files).values
    lock_digest = dvcrepo.lock_digest(repo)
    _model_digest(result, cfg, project)
    result.changed_outputs = dvcrepo.changed_outputs(repo, start_sha)
    if result.changed_outputs:
        gha.info("changed outputs: " + ", ".join(f"{c.path} ({c.change})" for c in result.changed_outputs[:MAX_CHANGED]))
    if tracker and result.mlflow_run_id:
        # metric names MLflow would refuse are made valid here, and a refusal stops here: before the push
        tracker.log(result.mlflow_run_id, metrics=result.metrics)

    if inputs.push:
        with gha.group("3. dvc push and verify the remote"):
            pushed = dvcrepo.push(repo, dvcrepo.cached_outputs(repo, stage_names))
            check = dvcrepo.verify_remote(repo)
            if not check.ok:
                missing = check.missing_outputs()
                raise DvcError(
                    f"after dvc push, {len(check.missing)} object(s) of the new dvc.lock are still missing from "
                    f"{check.remote}: {', '.join(missing)}. Nothing was committed.",
                    hint="check the remote's permissions (s3:PutObject) and re-run the job",
                )
            gha.info(f"pushed {pushed} file(s); {check.summary()}")

        with gha.group("4. commit dvc.lock back"):
            pushed_commit = gitrepo.commit_and_push(
                project,
                [p for p in commit_paths if (project / p).exists()],
                message=_message(stage_names, start_sha, inputs, result.changed_outputs),
                author_name=cfg.author_name,
                author_email=cfg.author_email,
                branch=inputs.branch,
                max_attempts=cfg.max_attempts,
                moved_check=lambda old, new: moved_reasons(project, repo, stage_names, old, new),
            )
            result.committed = pushed_commit.sha is not None
            result.lock_commit = pushed_commit.sha or gitrepo.head(project)
            if result.committed:
                gha.info(f"pushed {result.lock_commit[:12]} to {inputs.branch} after {pushed_commit.attempts} attempt(s)")
            else:
                gha.info("dvc.lock is unchanged: the rebuild reproduced the committed lock, so nothing was committed")
    else:
        result.lock_commit = gitrepo.head(project)

    if tracker and result.mlflow_run_id:
        with gha.group("5. register the model"):
            _register(tracker, result, cfg, repo, project, lock_digest, inputs, repository, label)
            if registered_before is not None:
                _say_versions_by_the_code(tracker, cfg, registered_before, result.model_version)
    elif inputs.register and cfg.model_name:
        gha.warning("MLFLOW_TRACKING_URI is not set: the model was rebuilt and committed but not registered")


def _versions_now(tracker, cfg: configmod.Config) -> set[str] | None:
    """The model's versions, or None when the registry cannot say: only a warning depends on them,
    and a registry that is down must not stop a rebuild before it commits (a rerun registers)."""
    try:
        return {v.version for v in tracker.versions(cfg.model_name)} if cfg.model_name else None
    except LockstepError:
        return None


def _say_versions_by_the_code(tracker, cfg: configmod.Config, before: set[str], ours: str | None) -> None:
    """Versions of the model that appeared while the rebuild ran, other than lockstep's, without
    lockstep's lineage: the project's code registered them (`registered_model_name=`, a
    registration stage), and the registry now has two versions per rebuild."""
    try:
        found = tracker.versions(cfg.model_name)
    except LockstepError:
        return
    theirs = sorted((v.version for v in found
                     if v.version not in before and v.version != ours and lineage.LOCK_COMMIT not in v.tags), key=int)
    if theirs:
        gha.warning(
            f"the project's code registered {cfg.model_name} itself during this rebuild (version(s) {', '.join(theirs)}, "
            f"without lockstep's lineage), beside lockstep's version {ours or '(none)'}: the registry gets two versions "
            "per rebuild, and an alias the code sets moves off lockstep's. Leave the registration to lockstep (drop "
            "`registered_model_name=`, `register_model`, the registration stage) and log the model into the rebuild's "
            "run (LOCKSTEP_MLFLOW_RUN_ID), or give lockstep's model another `model.name`", title="lockstep rebuild")


def _commit_plan(project: Path, repo, stage_names: list[str], changed_params) -> tuple[list[str], dict[str, str]]:
    """The paths the lock commit will hold, and the git-carried outputs left out because the
    project's own .gitignore ignores them (with the rule that does). Besides the locks and the
    rebuilt stages' git-carried outputs: the files dvc.yaml's top-level `metrics:`, `plots:` and
    `params:` name that git carries and no stage outputs (dvclive's folder of a training run,
    committed as it is), which a retrain rewrites as a developer's `dvc repro` does."""
    paths = dvcrepo.lock_files(repo)
    ignored: dict[str, str] = {}
    for path in dvcrepo.git_tracked_outputs(repo, stage_names):
        rule = gitrepo.ignored_by(project, path)
        if rule:
            ignored[path] = rule
        else:
            paths.append(path)
    outputs = [path.rstrip("/") for path in dvcrepo.all_outputs(repo)]
    for path in dict.fromkeys([*dvcrepo.top_level_metrics_files(repo), *dvcrepo.top_level_files(repo)]):
        inside_output = any(path == out or path.startswith(out + "/") for out in outputs)
        if path not in paths and not inside_output and not path.startswith("../") and gitrepo.tracked(project, path):
            paths.append(path)
    for name in changed_params:
        file = dvcrepo.params_file_of(name)
        if file not in paths:
            paths.append(file)
    return paths, ignored


def _say_what_is_not_committed(project: Path, commit_paths: list[str]) -> None:
    """Files git tracks that the stages rewrote and dvc.yaml does not declare (a copy of the model
    for a web app, a log): said, not committed. A commit of CI's copy would be a binary no lock
    describes; the team decides whether the stage should declare them."""
    covered = [path.rstrip("/") for path in commit_paths]
    left = [name for name in gitrepo.modified(project)
            if os.path.basename(name) != ".gitignore" and not any(name == p or name.startswith(p + "/") for p in covered)]
    if left:
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        gha.warning(f"the rebuilt stages changed files git tracks that dvc.yaml does not declare: {shown}. They are not "
                    "committed; declare them as outputs (`cache: false` to keep them in git) if the lock commit should "
                    "carry them", title="lockstep rebuild")


MAX_CHANGED = 20  # outputs named in a commit message; more are counted


def _one_line(text: str, limit: int = 200) -> str:
    """Repository text for one line of a commit message: printable, whitespace collapsed, bounded."""
    text = " ".join("".join(ch if ch.isprintable() else "?" for ch in text.replace("\n", " ")).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _changed_lines(changed: list[dvcrepo.OutputChange]) -> list[str]:
    lines = [f"{_one_line(c.path)} ({c.change})" for c in changed[:MAX_CHANGED]]
    if len(changed) > MAX_CHANGED:
        lines.append(f"… and {len(changed) - MAX_CHANGED} more")
    return lines


def _message(stages: list[str], start_sha: str, inputs: RebuildInputs,
             changed: list[dvcrepo.OutputChange] | None = None) -> str:
    lines = [f"lockstep: rebuild {', '.join(stages)} on {start_sha[:12]} [skip ci]", ""]
    lines.append(f"Trigger: {inputs.trigger}")
    if inputs.reason:
        lines.append(f"Reason: {' '.join(inputs.reason.split())[:200]}")
    lines.extend(f"Changed: {line}" for line in _changed_lines(changed or []))
    for assignment in inputs.set_params:
        lines.append(f"Set-param: {' '.join(assignment.split())[:200]}")
    if inputs.actor:
        lines.append(f"Actor: {inputs.actor}")
    if inputs.workflow_run_url:
        lines.append(f"Run: {inputs.workflow_run_url}")
    return "\n".join(lines) + "\n"


def moved_reasons(project: Path, repo, stage_names: list[str], old: str, new: str) -> list[str]:
    """Why the commits old..new invalidate a lock built from `old` (empty when they do not)."""
    prefix = gitrepo.prefix_of(project)
    files, params = dvcrepo.input_paths(repo, stage_names)
    changed = [path[len(prefix):] for path in gitrepo.changed_files(project, old, new) if path.startswith(prefix)]
    reasons = [f"{path} changed" for path in changed if path in files or path.endswith(".dvc")]
    hydra = dvcrepo.hydra_settings(repo)
    if hydra is not None and not hydra.refused:  # params.yaml is composed from it before the stages run
        folder = hydra.config_dir.rstrip("/") + "/"
        reasons += [f"{path} changed (params.yaml is composed from {folder})" for path in changed if path.startswith(folder)]
    for params_file, keys in params.items():
        if params_file not in changed:
            continue
        before = parse_file_or_empty(gitrepo.show(project, old, prefix + params_file), params_file)
        after = parse_file_or_empty(gitrepo.show(project, new, prefix + params_file), params_file)
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key) and any(key == k or key.startswith(k + ".") or k == "*" for k in keys):
                reasons.append(f"{params_file}:{key} changed ({before.get(key)!r} -> {after.get(key)!r})")
    locks = [name for name in dvcrepo.lock_files(repo) if name in changed]
    if locks:
        chosen = set(stage_names)
        upstream = [s.address for s in dvcrepo.pipeline_stages(repo) if s.name not in chosen and s.address not in chosen]
        before = dvcrepo.locked_entries(repo, lambda name: gitrepo.show(project, old, prefix + name))
        after = dvcrepo.locked_entries(repo, lambda name: gitrepo.show(project, new, prefix + name))
        for name in upstream:
            if before.get(name, {}).get("outs") != after.get(name, {}).get("outs"):
                reasons.append(f"the outputs of upstream stage '{name}' changed in its dvc.lock")
    return reasons


# --- registration -------------------------------------------------------------------------------


def _register(tracker, result: RebuildResult, cfg, repo, project: Path, lock_digest: str, inputs: RebuildInputs,
              repository: str, label: str) -> None:
    if not cfg.model_name or not cfg.model_path:
        gha.warning(f"{cfg.source}: no model.name/model.path: the rebuild was logged to MLflow but no model was registered")
        tracker.end_run(result.mlflow_run_id, "FINISHED")
        return
    stage_name = model_stage(repo, cfg)
    model = dvcrepo.output_owner(repo, cfg.model_path)
    assert model is not None  # noqa: S101 - model_stage() above raised a ConfigError otherwise
    model_md5 = model.md5
    tags = {
        lineage.LOCK_COMMIT: result.lock_commit,
        lineage.DVC_LOCK_SHA256: lock_digest,
        lineage.STAGE: stage_name,
        lineage.MODEL_PATH: cfg.model_path,
        lineage.DVC_REMOTE: dvcrepo.remote_url(repo, model.remote),
        lineage.DVC_OBJECT: dvcrepo.object_path(repo, model_md5, model.remote) if model_md5 else "",
        lineage.MODEL_MD5: model_md5,
        lineage.PROJECT: label,
        lineage.REPOSITORY: repository,
        lineage.TRIGGER: inputs.trigger,
        lineage.VERSION: __version__,
        lineage.MODEL_SHA256: result.model_sha256,
    }
    if inputs.reason:
        tags[lineage.REASON] = inputs.reason[:500]
    if result.changed_outputs:
        tags[lineage.CHANGED_OUTPUTS] = "\n".join(_changed_lines(result.changed_outputs))
    for key, value in result.metrics.items():
        tags[lineage.metric_tag(key)] = str(value)
    tracker.log(result.mlflow_run_id, tags=tags)
    result.model_name = cfg.model_name
    result.model_alias = cfg.alias

    # Idempotency by content: a rebuild that reproduced, byte for byte, the model the alias points
    # to adds no version; the existing one records this run and commit.
    current = tracker.version_by_alias(cfg.model_name, cfg.alias)
    if current is not None and model_md5 and (current.tags or {}).get(lineage.MODEL_MD5) == model_md5 and not inputs.register_unchanged:
        runs = [r for r in (current.tags.get(lineage.REBUILT_RUNS) or "").split() if r]
        runs = (runs + [f"{result.mlflow_run_id}@{result.lock_commit[:12]}"])[-20:]
        tracker.set_version_tags(cfg.model_name, str(current.version), {
            lineage.REBUILT_RUNS: " ".join(runs),
            **({lineage.MODEL_SHA256: result.model_sha256} if result.model_sha256 and not current.tags.get(lineage.MODEL_SHA256) else {}),
        })
        tracker.end_run(result.mlflow_run_id, "FINISHED")
        result.model_version = str(current.version)
        result.unchanged_since = str(current.version)
        result.unchanged_commit = (current.tags or {}).get(lineage.LOCK_COMMIT, "")
        gha.info(
            f"the model is unchanged since {cfg.model_name} version {current.version} (commit "
            f"{(current.tags or {}).get(lineage.LOCK_COMMIT, '')[:12]}, md5 {model_md5[:12]}): no new version; "
            f"this run is recorded on it (`register-unchanged: true` registers anyway)"
        )
        return
    tracker.end_run(result.mlflow_run_id, "FINISHED")
    identity = {lineage.DVC_LOCK_SHA256: lock_digest, lineage.MODEL_MD5: model_md5}
    version = tracker.register(
        cfg.model_name,
        run_id=result.mlflow_run_id,
        artifact=cfg.model_artifact,
        fallback_file=project / cfg.model_path,
        identity=identity,
        tags=tags,
    )
    result.model_version = version.version
    result.version_created = version.created
    gha.info(f"{'registered' if version.created else 'found already registered'} {cfg.model_name} version {version.version}")
    if registry.model_source(version) == registry.RAW_FILE:
        gha.warning(
            f"{cfg.model_name} version {version.version} is the file {cfg.model_path} as it is, not an MLflow model "
            f"(`mlflow.pyfunc.load_model` cannot load it): the training code logged no model named "
            f"'{cfg.model_artifact}' into the rebuild's run. To register a loadable model, log it there: "
            f"{registry.log_model_hint(cfg.model_artifact)}", title="lockstep rebuild")
    tracker.set_alias(cfg.model_name, cfg.alias, version.version)
    move = {"commit": result.lock_commit, "run": inputs.workflow_run_url, "mlflow_run": result.mlflow_run_id,
            "actor": inputs.actor, "reason": inputs.reason}
    if current is None or str(current.version) != str(version.version):
        registry.record_move(tracker, cfg.model_name, cfg.alias, version.version,
                             str(current.version) if current is not None else "", "rebuild", **move)
    if cfg.promote_to and inputs.promote:
        result.promoted = _promote(tracker, cfg, version, result.metrics, move, result)
    elif cfg.promote_to:
        gha.info(f"promotion to '{cfg.promote_to}' is left to the `promote` job (after its environment's approval)")
    _card(tracker, result, cfg, repo, project, lock_digest, inputs, repository, label, current, model_md5)


def _promote(tracker, cfg, registered, metrics: dict[str, Any], move: dict[str, str] | None = None,
             result: RebuildResult | None = None) -> bool:
    """Move registry.promote-to to the version just registered when the gates pass and the alias
    would not serve the raw model file where it served an MLflow model. A refusal is a warning:
    the version stays registered (and the lock committed), only promote-to does not move."""
    version = str(registered.version)
    current = tracker.version_by_alias(cfg.model_name, cfg.promote_to)
    if current is not None and str(current.version) == version:
        return True
    downgrade = registry.file_after_model(cfg.model_name, cfg.promote_to, current, registered)
    if downgrade:
        gha.warning(
            f"not promoted to '{cfg.promote_to}': {downgrade}. Version {version} is registered and '{cfg.alias}' points to it; "
            f"'{cfg.promote_to}' stays on version {current.version}. Log the model into the rebuild's run, "
            f"{registry.log_model_hint(cfg.model_artifact)}; or, if the consumers of '{cfg.promote_to}' load the file "
            f"rather than an MLflow model, promote it on purpose: `lockstep promote --version {version} "
            "--allow-file-model true` (promote.yml: `allow-file-model: true`)", title="lockstep rebuild: not promoted")
        if result is not None:
            result.promotion_note = (f"version {current.version} holds an MLflow model, this version the model file as "
                                     "it is, which mlflow.pyfunc.load_model cannot load")
        return False
    if note := registry.source_not_known(cfg.model_name, cfg.promote_to, current, registered):
        gha.info(note)
    base: dict[str, Any] = {}
    if current is not None:
        held = current.tags or {}
        for key in {*metrics, *(g.metric for g in cfg.gates)}:
            value = held.get(lineage.metric_tag(key))
            if value is None:
                continue
            try:
                base[key] = float(value)
            except ValueError:
                base[key] = value
    failed = [g for g in check_gates(cfg.gates, metrics, base) if not g.passed]
    if failed:
        held_by = f"version {current.version}" if current is not None else "nobody"
        gha.warning(
            f"not promoted to '{cfg.promote_to}' (held by {held_by}): "
            + "; ".join(f"{g.metric}: {', '.join(g.reasons)}" for g in failed)
        )
        return False
    tracker.set_alias(cfg.model_name, cfg.promote_to, version)
    tracker.set_version_tags(cfg.model_name, version, {lineage.PROMOTED_FROM: str(current.version) if current else ""})
    registry.record_move(tracker, cfg.model_name, cfg.promote_to, version, str(current.version) if current else "",
                         "promotion", **(move or {}))
    gha.info(f"promoted {cfg.model_name} version {version} to '{cfg.promote_to}'")
    return True


# --- what a registered version carries besides its lineage tags (registry.py) --------------------


def _model_digest(result: RebuildResult, cfg, project: Path) -> None:
    if not cfg.model_path:
        return
    path = project / cfg.model_path
    result.model_sha256 = provenance.sha256(path)
    result.model_kind = provenance.kind(path)
    result.model_path = gitrepo.prefix_of(project) + cfg.model_path.strip("/") if result.model_sha256 else ""


def _card(tracker, result: RebuildResult, cfg, repo, project: Path, lock_digest: str, inputs: RebuildInputs,
          repository: str, label: str, previous, model_md5: str) -> None:
    """The model card on the version (description), on the run (model_card.md) and in the job
    summary, and the alias history for the summary."""
    deps, params = dvcrepo.stage_inputs(repo, result.stages)
    evaluation = dvcrepo.evaluation_stages(repo, cfg.evaluation_stages, cfg.model_path)
    eval_deps, _ = dvcrepo.stage_inputs(repo, evaluation)
    data = set(dvcrepo.evaluation_inputs(repo, evaluation))
    start = result.start_commit
    card = registry.card_of(registry.CardInputs(
        model=cfg.model_name, version=result.model_version, alias=cfg.alias, previous=previous,
        promote_to=cfg.promote_to or "", promoted=result.promoted if inputs.promote else None,
        promotion_note=result.promotion_note,
        repository=repository, project=label, lock_commit=result.lock_commit, start_commit=start,
        start_subject=gitrepo.subject(project, start), lock_sha256=lock_digest, model_path=cfg.model_path,
        model_md5=model_md5, model_sha256=result.model_sha256, stages=result.stages, trigger=inputs.trigger,
        reason=inputs.reason, actor=inputs.actor, workflow_run_url=inputs.workflow_run_url,
        mlflow_run_id=result.mlflow_run_id, metrics=result.metrics, gates=cfg.gates, evaluation_stages=evaluation,
        inputs=deps, params=params,
        evaluation_data={path: digest for path, digest in eval_deps.items() if path in data and path != cfg.model_path},
    ))
    result.card = registry.publish_card(tracker, card)
    result.history = registry.history_section(tracker, cfg.model_name, [a for a in (cfg.alias, cfg.promote_to) if a])
