"""Rollback: move a serving alias back to an earlier registered version, after checking that the
version carries lockstep's lineage, and say how to restore its exact code, data and model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError, MlflowError

if TYPE_CHECKING:
    from .tracking import Tracker

REQUIRED_LINEAGE = ("lockstep.lock_commit", "lockstep.dvc_lock_sha256", "lockstep.model_md5")


@dataclass
class RollbackResult:
    model: str
    alias: str
    version: str
    previous: str | None
    lock_commit: str
    file_after_model: str = ""  # registry.file_after_model: the alias now serves a file where it served a model

    @property
    def restore(self) -> str:
        return f"git checkout {self.lock_commit} && dvc checkout"


def rollback(tracker: Tracker, model: str, alias: str, version: str | None, *, actor: str, reason: str,
             run_url: str = "") -> RollbackResult:
    if not reason.strip():
        raise InputError("a rollback needs a reason", hint="pass `reason:`; it is recorded on the version as a tag")
    current = tracker.version_by_alias(model, alias)
    previous = str(current.version) if current is not None else None
    if version is None:
        if current is None:
            raise InputError(
                f"{model}: alias '{alias}' is not set, so there is no version to roll back from",
                hint="name the version to move it to with `version:`",
            )
        candidates = [v for v in tracker.versions(model) if int(v.version) < int(current.version)
                      and all(v.tags.get(tag) for tag in REQUIRED_LINEAGE)]
        if not candidates:
            raise InputError(f"{model}: no earlier version with lockstep lineage before version {current.version}",
                             hint="name the version explicitly with `version:`")
        version = str(candidates[0].version)
    try:
        target = tracker.get_version(model, version)
    except MlflowError:
        raise InputError(f"{model}: version {version} does not exist", hint="list the versions in the MLflow UI") from None
    missing = [tag for tag in REQUIRED_LINEAGE if not (target.tags or {}).get(tag)]
    if missing:
        raise InputError(
            f"{model} version {version} has no lockstep lineage ({', '.join(missing)} missing): it was not built by CI",
            hint="roll back only to versions registered by a lockstep main rebuild",
        )
    from . import registry

    # A rollback is a person's choice of a version, often during an incident: a raw file replacing
    # an MLflow model is said (a warning), not refused as a promotion is.
    downgrade = registry.file_after_model(model, alias, current, target)
    tracker.set_alias(model, alias, version)
    tracker.set_version_tags(model, version, {
        "lockstep.rollback.alias": alias,
        "lockstep.rollback.by": actor or "unknown",
        "lockstep.rollback.reason": reason[:500],
        "lockstep.rollback.at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "lockstep.rollback.from_version": previous or "",
    })
    registry.record_move(tracker, model, alias, version, previous, "rollback", commit=target.tags["lockstep.lock_commit"],
                         run=run_url, actor=actor or "unknown", reason=reason)
    return RollbackResult(model, alias, version, previous, target.tags["lockstep.lock_commit"], downgrade)
