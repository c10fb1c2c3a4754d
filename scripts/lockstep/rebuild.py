"""Main rebuilds: the official model is built by CI, never taken from a developer's machine.

  1. pull the inputs of the rebuilt stages only (never their own outputs)
  2. create the MLflow run, hand it to the project's code as MLFLOW_RUN_ID, force the stages
  3. dvc push, then verify every object of the new lock is in the remote
  4. commit dvc.lock (and git-carried outputs) with [skip ci]; push without force, rebasing on a
     moved branch unless the new commits changed the rebuilt stages' inputs
  5. register the CI-built model once per lock (idempotent), alias it, maybe promote it
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import __version__, config as configmod, dvcrepo, gha, gitrepo
from .errors import ConfigError, DvcError, LockstepError
from .metrics import check_gates, parse_file


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
    workflow_run_url: str = ""


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
        }


def model_stage(repo, cfg: configmod.Config) -> str:
    if not cfg.model_path:
        if cfg.model_stage:
            return dvcrepo.stage_named(repo, cfg.model_stage).name
        raise ConfigError(
            f"{cfg.source}: model.path is not set",
            hint="add a `model:` section with `name` and `path` (the model file, an output in dvc.yaml)",
            file=cfg.source,
        )
    stage, out = dvcrepo.output_owner(repo, cfg.model_path)
    if stage is None:
        line = cfg.line_of("model", "path")
        raise ConfigError(
            f"{cfg.source}:{line}: model.path: {cfg.model_path!r} is not an output of any stage in dvc.yaml",
            hint="set model.path to a path listed under `outs:` of the training stage",
            file=cfg.source,
            line=line,
        )
    if cfg.model_stage and stage.name != cfg.model_stage:
        line = cfg.line_of("model", "stage")
        raise ConfigError(
            f"{cfg.source}:{line}: model.stage: {cfg.model_path!r} is produced by stage '{stage.name}', not '{cfg.model_stage}'",
            hint=f"set model.stage to '{stage.name}' or remove it",
            file=cfg.source,
            line=line,
        )
    return stage.name


def plan(repo, cfg: configmod.Config, inputs: RebuildInputs) -> list[str]:
    """Which stages to force, in run order."""
    if inputs.force_all:
        return [stage.name for stage in dvcrepo.pipeline_stages(repo)]
    roots = inputs.stages or list(cfg.rebuild_stages or []) or [model_stage(repo, cfg)]
    return [stage.name for stage in dvcrepo.downstream(repo, roots)]


def run(inputs: RebuildInputs) -> RebuildResult:
    from . import tracking

    project = inputs.project_dir.resolve()
    cfg = configmod.load(project, inputs.config_path or None)
    os.chdir(project)
    changed_params: dict[str, Any] = {}
    if inputs.set_params:
        changed_params = dvcrepo.set_params(project, inputs.set_params)
        for key, (old, new) in changed_params.items():
            gha.info(f"set {key}: {old!r} -> {new!r}")
    repo = dvcrepo.open_repo(project)
    stage_names = plan(repo, cfg, inputs)
    stages = [dvcrepo.stage_named(repo, name) for name in stage_names]
    result = RebuildResult(stages=stage_names)
    start_sha = gitrepo.head(project)
    gha.info(f"rebuilding {', '.join(stage_names)} from {start_sha[:12]}")

    with gha.group("1. pull the inputs of the rebuilt stages"):
        targets = dvcrepo.dep_outputs(repo, stages)
        fetched = dvcrepo.pull(repo, targets)
        gha.info(f"pulled {', '.join(targets) or 'nothing'} ({fetched} file(s)); outputs being rebuilt were not downloaded")

    tracker = None
    if tracking.configured() and inputs.register:
        tracker = tracking.Tracker()
        experiment = _experiment(inputs, cfg, project)
        result.mlflow_run_id = tracker.start_run(
            experiment,
            f"rebuild-{start_sha[:8]}",
            {
                "lockstep.kind": "main-rebuild",
                "lockstep.trigger": inputs.trigger,
                "lockstep.reason": inputs.reason,
                "lockstep.actor": inputs.actor,
                "lockstep.start_commit": start_sha,
                "lockstep.stages": " ".join(stage_names),
                "lockstep.version": __version__,
                "lockstep.workflow_run_url": inputs.workflow_run_url,
            },
        )

    with gha.group(f"2. dvc repro -f {' '.join(stage_names)}"):
        saved_run_id = os.environ.get("MLFLOW_RUN_ID")
        if result.mlflow_run_id:  # the project's training code logs into lockstep's run
            os.environ["MLFLOW_RUN_ID"] = result.mlflow_run_id
        try:
            dvcrepo.reproduce(repo, stage_names, force=True)
        except LockstepError as exc:
            if tracker and result.mlflow_run_id:
                _end_quietly(tracker, result.mlflow_run_id, "FAILED")
            exc.hint = f"nothing was pushed, committed or registered; {exc.hint}"
            raise
        finally:
            if saved_run_id is None:
                os.environ.pop("MLFLOW_RUN_ID", None)
            else:
                os.environ["MLFLOW_RUN_ID"] = saved_run_id
        repo = dvcrepo.open_repo(project)
        stages = [dvcrepo.stage_named(repo, name) for name in stage_names]

    if inputs.push:
        with gha.group("3. dvc push and verify the remote"):
            pushed = dvcrepo.push(repo, dvcrepo.cached_outputs(repo, stages))
            check = dvcrepo.verify_remote(repo)
            if not check.ok:
                missing = check.missing_outputs()
                raise DvcError(
                    f"after dvc push, {len(check.missing)} object(s) of the new dvc.lock are still missing from "
                    f"{check.remote}: {', '.join(missing)}. Nothing was committed.",
                    hint="check the remote's permissions (s3:PutObject) and re-run the job",
                )
            gha.info(f"pushed {pushed} file(s); all {check.checked} object(s) of dvc.lock are in {check.remote}")

    result.metrics = _metrics(project, cfg, repo)
    lock_digest = dvcrepo.lock_digest(project)

    if inputs.push:
        with gha.group("4. commit dvc.lock back"):
            paths = ["dvc.lock", *[p for p in dvcrepo.git_tracked_outputs(repo, stages) if (project / p).exists()]]
            if changed_params:
                paths.append("params.yaml")
            message = _message(stage_names, start_sha, inputs)
            pushed_commit = gitrepo.commit_and_push(
                project,
                paths,
                message=message,
                author_name=cfg.author_name,
                author_email=cfg.author_email,
                branch=inputs.branch,
                max_attempts=cfg.max_attempts,
                moved_check=lambda old, new: moved_reasons(project, repo, stages, old, new),
            )
            result.committed = pushed_commit.sha is not None
            result.lock_commit = pushed_commit.sha or gitrepo.head(project)
            if result.committed:
                gha.info(f"pushed {result.lock_commit[:12]} to {inputs.branch} after {pushed_commit.attempts} attempt(s)")
            else:
                gha.info("dvc.lock is unchanged: nothing to commit")
    else:
        result.lock_commit = gitrepo.head(project)

    if tracker and result.mlflow_run_id:
        with gha.group("5. register the model"):
            _register(tracker, result, cfg, repo, project, lock_digest, inputs)
    elif inputs.register and cfg.model_name:
        gha.warning("MLFLOW_TRACKING_URI is not set: the model was rebuilt and committed but not registered")
    return result


def _experiment(inputs: RebuildInputs, cfg, project: Path) -> str:
    from .validate import experiment_name

    prefix = gitrepo.prefix_of(project).rstrip("/") or "."
    return experiment_name(inputs.experiment or cfg.experiment, inputs.repository or os.environ.get("GITHUB_REPOSITORY", "local"), prefix)


def _end_quietly(tracker, run_id: str, status: str) -> None:
    try:
        tracker.end_run(run_id, status)
    except LockstepError as exc:
        gha.warning(f"could not mark MLflow run {run_id} {status}: {exc.message}")


def _message(stages: list[str], start_sha: str, inputs: RebuildInputs) -> str:
    lines = [f"lockstep: rebuild {', '.join(stages)} on {start_sha[:12]} [skip ci]", ""]
    lines.append(f"Trigger: {inputs.trigger}")
    if inputs.reason:
        lines.append(f"Reason: {' '.join(inputs.reason.split())[:200]}")
    for assignment in inputs.set_params:
        lines.append(f"Set-param: {' '.join(assignment.split())[:200]}")
    if inputs.actor:
        lines.append(f"Actor: {inputs.actor}")
    if inputs.workflow_run_url:
        lines.append(f"Run: {inputs.workflow_run_url}")
    return "\n".join(lines) + "\n"


def _metrics(project: Path, cfg, repo) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name in cfg.metrics_files or dvcrepo.metrics_files(repo):
        path = project / name
        if path.is_file():
            metrics.update(parse_file(path.read_text("utf-8"), name))
    return metrics


def moved_reasons(project: Path, repo, stages: list, old: str, new: str) -> list[str]:
    """Why the commits old..new invalidate a lock built from `old` (empty when they do not)."""
    prefix = gitrepo.prefix_of(project)
    files, params = dvcrepo.input_paths(repo, stages)
    changed = [path[len(prefix):] for path in gitrepo.changed_files(project, old, new) if path.startswith(prefix)]
    reasons = [f"{path} changed" for path in changed if path in files or path.endswith(".dvc")]
    for params_file, keys in params.items():
        if params_file not in changed:
            continue
        before = _flat_yaml(gitrepo.show(project, old, prefix + params_file))
        after = _flat_yaml(gitrepo.show(project, new, prefix + params_file))
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key) and any(key == k or key.startswith(k + ".") or k == "*" for k in keys):
                reasons.append(f"{params_file}:{key} changed ({before.get(key)!r} -> {after.get(key)!r})")
    if "dvc.lock" in changed:
        upstream = {s.addressing for s in repo.index.stages} - {s.addressing for s in stages}
        before = dvcrepo.lock_entries(gitrepo.show(project, old, prefix + "dvc.lock"))
        after = dvcrepo.lock_entries(gitrepo.show(project, new, prefix + "dvc.lock"))
        for name in sorted(upstream):
            if before.get(name, {}).get("outs") != after.get(name, {}).get("outs"):
                reasons.append(f"the outputs of upstream stage '{name}' changed in dvc.lock")
    return reasons


def _flat_yaml(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        return parse_file(text, "params.yaml")
    except yaml.YAMLError:
        return {}


# --- registration -------------------------------------------------------------------------------


def _register(tracker, result: RebuildResult, cfg, repo, project: Path, lock_digest: str, inputs: RebuildInputs) -> None:
    if not cfg.model_name or not cfg.model_path:
        gha.warning(f"{cfg.source}: no model.name/model.path: the rebuild was logged to MLflow but no model was registered")
        return
    stage_name = model_stage(repo, cfg)
    _stage, out = dvcrepo.output_owner(repo, cfg.model_path)
    lineage = {
        "lockstep.lock_commit": result.lock_commit,
        "lockstep.dvc_lock_sha256": lock_digest,
        "lockstep.stage": stage_name,
        "lockstep.model_path": cfg.model_path,
        "lockstep.dvc_remote": dvcrepo.remote_url(repo, out.remote),
        "lockstep.dvc_object": dvcrepo.object_path(repo, out.hash_info.value, out.remote) if out.hash_info else "",
        "lockstep.model_md5": out.hash_info.value if out.hash_info else "",
        "lockstep.project": gitrepo.prefix_of(project).rstrip("/") or ".",
        "lockstep.repository": inputs.repository or os.environ.get("GITHUB_REPOSITORY", ""),
        "lockstep.trigger": inputs.trigger,
        "lockstep.version": __version__,
    }
    if inputs.reason:
        lineage["lockstep.reason"] = inputs.reason[:500]
    for key, value in result.metrics.items():
        lineage[f"lockstep.metric.{key}"] = str(value)
    tracker.log(
        result.mlflow_run_id,
        metrics=result.metrics,
        tags={**lineage, "lockstep.lock_commit": result.lock_commit},
    )
    _end_quietly(tracker, result.mlflow_run_id, "FINISHED")
    identity = {"lockstep.dvc_lock_sha256": lock_digest, "lockstep.model_md5": lineage["lockstep.model_md5"]}
    version = tracker.register(
        cfg.model_name,
        run_id=result.mlflow_run_id,
        artifact=cfg.model_artifact,
        fallback_file=project / cfg.model_path,
        identity=identity,
        tags=lineage,
    )
    result.model_name = cfg.model_name
    result.model_version = version.version
    result.version_created = version.created
    gha.info(f"{'registered' if version.created else 'found already registered'} {cfg.model_name} version {version.version}")
    tracker.set_alias(cfg.model_name, cfg.alias, version.version)
    result.model_alias = cfg.alias
    if cfg.promote_to:
        result.promoted = _promote(tracker, cfg, version.version, result.metrics)


def _promote(tracker, cfg, version: str, metrics: dict[str, Any]) -> bool:
    current = tracker.version_by_alias(cfg.model_name, cfg.promote_to)
    if current is not None and str(current.version) == str(version):
        return True
    base: dict[str, Any] = {}
    if current is not None:
        for key, value in (current.tags or {}).items():
            if key.startswith("lockstep.metric."):
                try:
                    base[key[len("lockstep.metric."):]] = float(value)
                except ValueError:
                    base[key[len("lockstep.metric."):]] = value
    failed = [g for g in check_gates(cfg.gates, metrics, base) if not g.passed]
    if failed:
        held = f"version {current.version}" if current is not None else "nobody"
        gha.warning(
            f"not promoted to '{cfg.promote_to}' (held by {held}): "
            + "; ".join(f"{g.metric}: {', '.join(g.reasons)}" for g in failed)
        )
        return False
    tracker.set_alias(cfg.model_name, cfg.promote_to, version)
    tracker.set_version_tags(cfg.model_name, version, {"lockstep.promoted_from": str(current.version) if current else ""})
    gha.info(f"promoted {cfg.model_name} version {version} to '{cfg.promote_to}'")
    return True
