"""Everything lockstep asks of MLflow: runs, the Model Registry, aliases. The only module that
imports mlflow, and only when a function here is called (import costs ~2 s); PR validation and
main rebuilds call it in a child process that imports MLflow meanwhile (`TrackerProcess`).

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
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .errors import MlflowError

TAG_PREFIX = "lockstep."
MODEL_SOURCE = f"{TAG_PREFIX}model_source"  # on a registered version: "logged-model" or "file"
_NAME_OK = re.compile(r"[^\w\-. /:]")
Pairs = Union[Mapping[str, Any], Iterable[tuple[str, Any]]]  # what dict() takes


def configured() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


class TrackerProcess:
    """A `Tracker` in a child process: importing MLflow takes a second or more of CPU, which the
    child spends on another core while lockstep checks the lock and pulls.

    The child is started with the environment a pull request's code gets (so its /proc/<pid>/environ
    shows no credential) and is handed the whole environment over its socket. `ready()` waits for
    its import of MLflow to end: that must happen before any of the PR's code runs, because a
    module imported later could be one that code rewrote (guard.py checks the files only when each
    command ends; validate.py's `Context.stage_env`, called right before that code, waits). Each
    call of a `Tracker` method runs in the child; its result, or its error, comes back."""

    def __init__(self, **options: int) -> None:
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        from .procenv import withheld_from_untrusted

        ours, theirs = socket.socketpair()
        env = {name: value for name, value in os.environ.items() if not withheld_from_untrusted(name)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
        with theirs:
            self._process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-m", "lockstep.tracking", str(theirs.fileno())],
                env=env, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        self._conn.send((dict(os.environ), options))
        self._ready = False
        self._error: MlflowError | None = None

    def ready(self, timeout: float = 300.0) -> None:
        """Wait until the child has imported MLflow. A child that died or hangs is no reason to stop
        a validation (its MLflow check says the run was not logged): its error is kept for the calls."""
        if self._ready:
            return
        self._ready = True
        try:
            if not self._conn.poll(timeout):
                self._process.kill()
                raise MlflowError(f"the MLflow client process did not import MLflow within {timeout:.0f} s",
                                  hint="re-run the job; if it happens again, report it with the log")
            self._receive()
        except MlflowError as exc:
            self._error = exc

    def _receive(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            raise MlflowError("the MLflow client process ended without an answer",
                              hint="its error, if any, is in the log above; re-run the job") from None
        if status == "error":
            raise value
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(Tracker, name, None)):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.ready()
            if self._error is not None:
                raise self._error
            try:
                self._conn.send((name, args, kwargs))
            except OSError:
                raise MlflowError("the MLflow client process ended", hint="its error, if any, is in the log above; re-run the job") from None
            return self._receive()

        return call

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._conn.close()
        try:
            self._process.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a child that does not end is killed
            self._process.kill()
            self._process.wait()


def _serve(fd: int) -> None:
    """The child of `TrackerProcess`: take the environment, import MLflow, then run calls."""
    import sys
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    environ, options = conn.recv()
    os.environ.clear()
    os.environ.update(environ)
    try:
        from . import projectenv

        projectenv.wait_for_mlflow_client()  # the setup may still be installing it (setup.sh)
        import mlflow  # noqa: F401
    except Exception:  # noqa: BLE001, S110 - Tracker() imports it again, and fails there, named
        pass
    conn.send(("ok", None))
    tracker: Tracker | None = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        name, args, kwargs = message
        try:
            tracker = tracker or Tracker(**options)
            reply: tuple[str, Any] = ("ok", getattr(tracker, name)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised again in lockstep's process
            reply = ("error", exc)
        sys.stdout.flush()
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be pickled is a bug, named
            conn.send(("error", RuntimeError(f"MLflow client process: {name} answered {type(exc).__name__}: {exc}")))


def safe_name(name: str, limit: int = 250) -> str:
    """A name MLflow accepts for a metric, param or tag: letters, digits and `_-. /:` (anything
    else becomes `_`), at most `limit` characters, and no path trick (MLflow refuses names that
    would resolve to another name as a file path: `a/../b`, `/a`, `a//b`, `a/`, `.`, `..x`): an empty,
    `.` or `..` segment between slashes becomes `_`, `_` or `__`, a leading `..` becomes `_.`."""
    cleaned = _NAME_OK.sub("_", name) or "_"
    for _ in range(8):  # fixing a segment can lengthen the name, cutting it can make a new `.`
        cleaned = "/".join(_SEGMENT_FIX.get(part, part) for part in cleaned[: max(limit, 1)].split("/"))
        if cleaned.startswith(".."):  # MLflow refuses any name that starts with `..`
            cleaned = "_" + cleaned[1:]
        if len(cleaned) <= limit:
            return cleaned
    return _NAME_OK.sub("_", cleaned.replace("/", "_"))[:limit] or "_"


_SEGMENT_FIX = {"": "_", ".": "_", "..": "__"}


@contextlib.contextmanager
def _http(retries: int, timeout: int) -> Iterator[None]:
    with _environment({
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    }):
        yield


@contextlib.contextmanager
def _environment(keys: dict[str, str]) -> Iterator[None]:
    """MLflow reads its settings from the process environment only: set them for one call."""
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


def _version(model: str, found: Any) -> Version:
    """lockstep's Version of an MLflow ModelVersion (MLflow's entities stay in this module)."""
    return Version(model, str(found.version), found.run_id, dict(found.tags or {}), created=False)


class Tracker:
    """A thin, error-translating wrapper around `MlflowClient`."""

    def __init__(self, *, retries: int = 2, timeout: int = 15) -> None:
        self.retries = retries
        self.timeout = timeout
        from . import projectenv

        projectenv.wait_for_mlflow_client()  # the setup may still be installing it: its error, named
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

    def experiment_id(self, name: str, artifact_location: str | None = None) -> str:
        """The experiment `name` (restored when deleted), created with `artifact_location` when missing."""
        with self._call(f"lookup of experiment {name!r}"):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                return experiment.experiment_id
            try:
                return self.client.create_experiment(name, artifact_location=artifact_location)
            except Exception:  # another job created it meanwhile
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                return experiment.experiment_id

    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str], attempts: int = 3) -> str:
        """Create a run, once: MLflow's HTTP retries are off for the call, and the run carries a
        key of this call, so that after a lost answer the run the server did create is found and
        used (a blind retry would leave that one RUNNING forever)."""
        from .lineage import RUN_KEY

        experiment_id = self.experiment_id(experiment)
        key = uuid.uuid4().hex
        all_tags = {**{k: str(v) for k, v in tags.items()}, RUN_KEY: key}
        last: MlflowError | None = None
        for attempt in range(1, attempts + 1):
            try:
                with self._call("run creation", retries=0):
                    run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
                return run.info.run_id
            except MlflowError as exc:
                last = exc
                time.sleep(min(1.0 * attempt, 3.0))
                with self._call("run lookup after a failed creation"):
                    found = self.client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY}` = '{key}'", max_results=1)
                if found:
                    return found[0].info.run_id
        raise last if last is not None else MlflowError("MLflow run creation failed", hint="re-run the job")

    def log(self, run_id: str, *, params: Pairs = (), metrics: Pairs = (), tags: Pairs = ()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        # two names can map to one safe name (`p@k`, `p_k`): one entry each, as MLflow refuses
        # duplicate param keys in a batch
        param_items = list({safe_name(k): Param(safe_name(k), str(v)[:6000]) for k, v in dict(params).items()}.values())
        metric_map = {}
        for key, value in dict(metrics).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            metric_map[safe_name(key)] = Metric(safe_name(key), float(value), now, 0)
        metric_items = list(metric_map.values())
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

    def end_run_quietly(self, run_id: str, status: str) -> None:
        """End a run on a failure path without hiding the failure that got us here."""
        try:
            self.end_run(run_id, status)
        except MlflowError as exc:
            print(f"could not mark MLflow run {run_id} {status}: {exc.message}", flush=True)

    def forward_local_runs(self, local_uri: str, run_id: str) -> int:
        """Copy what the project's own code logged to a local MLflow store (PR code gets no
        credentials, so its client points there) into child runs of `run_id`, one per local run and
        nested as they were: their params, every metric with its steps, and their tags but MLflow's
        and lockstep's own. Never into `run_id` itself: that run holds what lockstep measured, and a
        PR's code must not be able to log an `accuracy` there beside the one CI computed. Returns
        the runs copied."""
        from mlflow import MlflowClient

        local_path = Path(local_uri.removeprefix("file://"))
        if not local_uri.startswith("file:") or not local_path.is_dir():
            return 0
        with _environment({"MLFLOW_ALLOW_FILE_STORE": "true"}), self._call("reading the project's local MLflow store"):
            local = MlflowClient(tracking_uri=local_uri)
            runs = [run for experiment in local.search_experiments() for run in local.search_runs([experiment.experiment_id])]
            histories = {run.info.run_id: {key: local.get_metric_history(run.info.run_id, key) for key in run.data.metrics}
                         for run in runs}
        with self._call("forwarding the project's runs"):
            experiment_id = self.client.get_run(run_id).info.experiment_id
        forwarded: dict[str, str] = {}  # local run id -> its child run here
        for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
            parent = forwarded.get(str(run.data.tags.get("mlflow.parentRunId", "")), run_id)
            forwarded[run.info.run_id] = self._forward(experiment_id, parent, run, histories[run.info.run_id])
        return len(forwarded)

    def _forward(self, experiment_id: str, parent: str, run: Any, history: Mapping[str, list]) -> str:
        from mlflow.entities import Metric

        name = re.sub(r"[^\w\-. /:()]", "_", str(run.info.run_name or run.info.run_id))[:200]
        tags = {key: value for key, value in run.data.tags.items() if not key.startswith(("mlflow.", TAG_PREFIX))}
        tags |= {"mlflow.parentRunId": parent, f"{TAG_PREFIX}forwarded_from": run.info.run_id,
                 f"{TAG_PREFIX}kind": "project-code-run"}
        with self._call("forwarding the project's runs", retries=0):
            child = self.client.create_run(experiment_id, run_name=f"{name} (the PR's code)", tags=tags).info.run_id
        try:
            self.log(child, params=run.data.params)
            items = [Metric(safe_name(m.key), m.value, m.timestamp, m.step) for values in history.values() for m in values
                     if math.isfinite(m.value)]
            with self._call("forwarding the project's metrics"):
                for start in range(0, len(items), 500):
                    self.client.log_batch(child, metrics=items[start : start + 500])
        finally:
            self.end_run_quietly(child, "FAILED" if run.info.status == "FAILED" else "FINISHED")
        return child

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
        return _version(model, found[0])

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
        # an MLflow model the training code logged into the run, or the file as it is (which
        # `mlflow.pyfunc.load_model` cannot load): said on the version
        all_tags = {**tags, **identity, MODEL_SOURCE: "logged-model" if model_id else "file"}
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

    def version_by_alias(self, model: str, alias: str) -> Version | None:
        from mlflow.exceptions import MlflowException

        with self._call(f"alias {alias!r} lookup on {model!r}"):
            try:
                return _version(model, self.client.get_model_version_by_alias(model, alias))
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "INVALID_PARAMETER_VALUE" in str(exc.error_code):
                    return None
                raise

    def get_version(self, model: str, version: str) -> Version:
        with self._call(f"lookup of {model!r} version {version}"):
            return _version(model, self.client.get_model_version(model, version))

    def set_version_tags(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        with self._call(f"tagging {model!r} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(model, version, key, str(value)[:5000])

    def set_description(self, model: str, version: str, text: str) -> None:
        with self._call(f"description of {model!r} version {version}"):
            self.client.update_model_version(model, version, description=text)

    def versions(self, model: str) -> list[Version]:
        with self._call(f"listing versions of {model!r}"):
            found = self.client.search_model_versions(f"name='{_quote(model)}'", order_by=["version_number DESC"])
        return [_version(model, item) for item in found]

    def aliases(self, model: str) -> dict[str, str]:
        with self._call(f"aliases of {model!r}"):
            registered = self.client.get_registered_model(model)
        return dict(registered.aliases or {})


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


if __name__ == "__main__":  # TrackerProcess's child: python -m lockstep.tracking FD
    import sys

    from lockstep.tracking import _serve as serve  # this module's classes by their own name, for pickle

    serve(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # without the interpreter's teardown of MLflow's modules (0.3 s)
