"""Everything lockstep asks of MLflow: runs, the Model Registry, aliases. The only module that
imports mlflow, and only when a function here is called (import costs ~2 s).

MLflow's own HTTP layer retries 5xx answers, which would turn a lost `create_model_version`
response into a duplicate version. Registration therefore runs with MLflow's retries off and
lockstep's own idempotent retry: look the version up by its lineage tags before creating one.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .errors import MlflowError

TAG_PREFIX = "lockstep."
_NAME_OK = re.compile(r"[^\w\-. /:]")
Pairs = Union[Mapping[str, Any], Iterable[tuple[str, Any]]]  # what dict() takes


def configured() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


def safe_name(name: str) -> str:
    """MLflow accepts metric/param names of letters, digits, `_-. /:`; map anything else to `_`."""
    cleaned = _NAME_OK.sub("_", name)[:250]
    return cleaned or "_"


@contextlib.contextmanager
def _http(retries: int, timeout: int) -> Iterator[None]:
    keys = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    }
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure(action: str, exc: BaseException) -> MlflowError:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "(unset)")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return MlflowError(
        f"MLflow {action} failed at {_redact(uri)}: {type(exc).__name__}: {_redact(text)[:500]}",
        hint="check MLFLOW_TRACKING_URI and the MLflow credentials (secrets), and that the server is up; then re-run",
    )


def _redact(text: str) -> str:
    """`text` without URL credentials (MLflow's errors quote the whole URL) or credential values."""
    text = re.sub(r"//[^/@\s]*@", "//***@", text)
    for key in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        if secret := os.environ.get(key):
            text = text.replace(secret, "***")
    return text


@dataclass
class Version:
    name: str
    version: str
    run_id: str | None
    tags: dict[str, str]
    created: bool  # False when an existing version was found (idempotent re-run)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Tracker:
    """A thin, error-translating wrapper around `MlflowClient`."""

    def __init__(self, *, retries: int = 2, timeout: int = 15) -> None:
        self.retries = retries
        self.timeout = timeout
        with self._call("client setup"):
            from mlflow import MlflowClient

            self.client = MlflowClient()

    @contextlib.contextmanager
    def _call(self, action: str, *, retries: int | None = None) -> Iterator[None]:
        with _http(self.retries if retries is None else retries, self.timeout):
            try:
                yield
            except MlflowError:
                raise
            except Exception as exc:  # noqa: BLE001 - MlflowException, requests errors, protobuf errors
                raise _failure(action, exc) from None

    # --- runs ---------------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        with self._call(f"lookup of experiment {name!r}"):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                return experiment.experiment_id
            try:
                return self.client.create_experiment(name)
            except Exception:  # another job created it meanwhile
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                return experiment.experiment_id

    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> str:
        experiment_id = self.experiment_id(experiment)
        with self._call("run creation"):
            run = self.client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
        return run.info.run_id

    def log(self, run_id: str, *, params: Pairs = (), metrics: Pairs = (), tags: Pairs = ()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        param_items = [Param(safe_name(k), str(v)[:6000]) for k, v in dict(params).items()]
        metric_items = []
        for key, value in dict(metrics).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            metric_items.append(Metric(safe_name(key), float(value), now, 0))
        tag_items = [RunTag(k, str(v)[:5000]) for k, v in dict(tags).items()]
        with self._call("logging"):
            existing = self.client.get_run(run_id).data.params
            param_items = [p for p in param_items if p.key not in existing]
            for start in range(0, max(len(param_items), len(metric_items), len(tag_items)), 100):
                self.client.log_batch(
                    run_id,
                    metrics=metric_items[start : start + 100],
                    params=param_items[start : start + 100],
                    tags=tag_items[start : start + 100],
                )

    def log_files(self, run_id: str, files: list[Path], artifact_path: str | None = None) -> None:
        with self._call("artifact upload"):
            for file in files:
                self.client.log_artifact(run_id, str(file), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        with self._call("ending the run"):
            self.client.set_terminated(run_id, status)

    def run_url(self, run_id: str) -> str:
        base = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
        if not base.startswith("http"):
            return ""
        with self._call("run lookup"):
            experiment_id = self.client.get_run(run_id).info.experiment_id
        return f"{_redact(base)}/#/experiments/{experiment_id}/runs/{run_id}"

    # --- the registry -------------------------------------------------------------------------

    def find_version(self, model: str, tags: Mapping[str, str]) -> Version | None:
        clauses = [f"name='{_quote(model)}'"] + [f"tags.`{key}`='{_quote(value)}'" for key, value in tags.items()]
        with self._call("model version search"):
            found = self.client.search_model_versions(" and ".join(clauses), order_by=["version_number ASC"])
        if not found:
            return None
        first = found[0]
        return Version(model, str(first.version), first.run_id, dict(first.tags), created=False)

    def register(
        self,
        model: str,
        *,
        run_id: str,
        artifact: str,
        fallback_file: Path | None,
        identity: Mapping[str, str],
        tags: Mapping[str, str],
        attempts: int = 3,
    ) -> Version:
        """Register the model of `run_id`, once per `identity` (tags that name the build).

        Finds an existing version by `identity` first; creates one otherwise, with MLflow's
        HTTP retries off so a lost answer cannot create a second version; on a failure, looks
        again before trying again.
        """
        existing = self.find_version(model, identity)
        if existing:
            return existing
        source, model_id = self._source(run_id, artifact, fallback_file)
        with self._call(f"creation of registered model {model!r}"):
            from mlflow.exceptions import MlflowException

            try:
                self.client.create_registered_model(model)
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                    raise
        all_tags = {**tags, **identity}
        last: MlflowError | None = None
        for attempt in range(1, attempts + 1):
            try:
                with self._call(f"registration of {model!r}", retries=0):
                    version = self.client.create_model_version(
                        model, source=source, run_id=run_id, tags=all_tags, model_id=model_id, await_creation_for=60
                    )
                return Version(model, str(version.version), run_id, all_tags, created=True)
            except MlflowError as exc:
                last = exc
                time.sleep(min(2.0 * attempt, 5.0))
                found = self.find_version(model, identity)
                if found:
                    found.created = True
                    return found
        assert last is not None  # noqa: S101 - the loop ran at least once
        raise last

    def _source(self, run_id: str, artifact: str, fallback_file: Path | None) -> tuple[str, str | None]:
        """The logged model named `artifact` in the run (MLflow 3 LoggedModel), else the model
        file itself, logged by lockstep as a plain artifact of the run."""
        with self._call("logged model lookup"):
            run = self.client.get_run(run_id)
            models = self.client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}' AND name = '{_quote(artifact)}'",
            )
        if models:
            return models[0].artifact_location, models[0].model_id
        if fallback_file is None or not fallback_file.exists():
            raise MlflowError(
                f"the run {run_id} has no logged model named {artifact!r} and there is no model file to log",
                hint="log the model in the training code with `log_model(name=...)`, or set model.path in lockstep.yaml",
            )
        with self._call("model file upload"):
            if fallback_file.is_dir():
                self.client.log_artifacts(run_id, str(fallback_file), artifact)
            else:
                self.client.log_artifact(run_id, str(fallback_file), artifact)
            artifact_uri = self.client.get_run(run_id).info.artifact_uri.rstrip("/")
        return f"{artifact_uri}/{artifact}", None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        with self._call(f"alias {alias!r} on {model!r}"):
            self.client.set_registered_model_alias(model, alias, version)

    def version_by_alias(self, model: str, alias: str):
        from mlflow.exceptions import MlflowException

        with self._call(f"alias {alias!r} lookup on {model!r}"):
            try:
                return self.client.get_model_version_by_alias(model, alias)
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "INVALID_PARAMETER_VALUE" in str(exc.error_code):
                    return None
                raise

    def get_version(self, model: str, version: str):
        with self._call(f"lookup of {model!r} version {version}"):
            return self.client.get_model_version(model, version)

    def set_version_tags(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        with self._call(f"tagging {model!r} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(model, version, key, str(value)[:5000])

    def versions(self, model: str) -> list:
        with self._call(f"listing versions of {model!r}"):
            return list(self.client.search_model_versions(f"name='{_quote(model)}'", order_by=["version_number DESC"]))

    def aliases(self, model: str) -> dict[str, str]:
        with self._call(f"aliases of {model!r}"):
            registered = self.client.get_registered_model(model)
        return dict(registered.aliases or {})


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")
