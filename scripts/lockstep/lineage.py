"""lockstep's vocabulary in MLflow and in reports: tag names, the project's label and the
experiment name. Rebuild writes these tags, rollback and PR validation read them: one owner, so
what one writes is what the other requires."""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "lockstep."

# On every MLflow run and model version lockstep creates.
KIND = "lockstep.kind"  # "pr-validation" | "main-rebuild"
VERSION = "lockstep.version"
PROJECT = "lockstep.project"
REPOSITORY = "lockstep.repository"
WORKFLOW_RUN_URL = "lockstep.workflow_run_url"
RUN_KEY = "lockstep.run_key"  # one per run creation: finds the run after a lost answer

# PR validation runs.
PR = "lockstep.pr"
HEAD_SHA = "lockstep.head_sha"
BASE_SHA = "lockstep.base_sha"
VERDICT = "lockstep.verdict"
FORWARDED_FROM = "lockstep.forwarded_from"  # a run the project's code logged locally, copied in

# Main rebuilds (runs) and the versions they register (lineage).
TRIGGER = "lockstep.trigger"
REASON = "lockstep.reason"
ACTOR = "lockstep.actor"
START_COMMIT = "lockstep.start_commit"
STAGES = "lockstep.stages"
LOCK_COMMIT = "lockstep.lock_commit"
DVC_LOCK_SHA256 = "lockstep.dvc_lock_sha256"
STAGE = "lockstep.stage"
MODEL_PATH = "lockstep.model_path"
DVC_REMOTE = "lockstep.dvc_remote"
DVC_OBJECT = "lockstep.dvc_object"
MODEL_MD5 = "lockstep.model_md5"
METRIC_PREFIX = "lockstep.metric."
PROMOTED_FROM = "lockstep.promoted_from"
REBUILT_RUNS = "lockstep.rebuilt_runs"  # later rebuilds that reproduced this same model
CHANGED_OUTPUTS = "lockstep.changed_outputs"  # DVC outputs the rebuild changed (by their locks), one per line
ROLLBACK_PREFIX = "lockstep.rollback."
MODEL_SHA256 = "lockstep.model_sha256"  # the model file's SHA-256 (a folder: over its manifest, provenance.py)
PR_NUMBER = "lockstep.pr_number"  # the pull request the rebuilt commit came from, when known
PROMOTION_PREFIX = "lockstep.promotion."  # by, at, reason, environment, run, from_version
# One tag per alias move, on the version the alias moved to: `lockstep.alias_history.<alias>.<UTC
# time>` = a small JSON object (history.py). One tag per move: no read-modify-write, no size limit.
ALIAS_HISTORY_PREFIX = "lockstep.alias_history."

# What a version must carry to be a rollback target: enough to restore code, data and model.
REQUIRED = (LOCK_COMMIT, DVC_LOCK_SHA256, MODEL_MD5)


def metric_tag(metric: str) -> str:
    """The tag that records a metric's value on a model version: a name MLflow accepts, whatever
    the metric is called (`precision@k` -> `lockstep.metric.precision_k`), at most 250 characters."""
    from .tracking import safe_name

    return METRIC_PREFIX + safe_name(metric, 250 - len(METRIC_PREFIX))


def repository(given: str = "") -> str:
    """owner/name of the repository: the input, else GitHub's variable, else ''."""
    return given or os.environ.get("GITHUB_REPOSITORY", "")


def project_label(prefix: str, repository_name: str = "", project_dir: str | Path | None = None) -> str:
    """How reports, comment markers, experiments and tags name a DVC project: its folder in the
    repository, or, for a project at the repository's root, the repository's name (never ".")."""
    folder = prefix.strip("/")
    if folder:
        return folder
    if repository_name and "/" in repository_name:
        return repository_name.rsplit("/", 1)[1]
    if repository_name:
        return repository_name
    if project_dir is not None:
        return Path(project_dir).resolve().name or "project"
    return "project"


def experiment_name(template: str | None, repository_name: str, project: str) -> str:
    template = template or "lockstep/{repository}/{project}"
    return template.replace("{repository}", repository_name or "local").replace("{project}", project)
