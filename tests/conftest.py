"""The test bed: real servers on loopback, real DVC repositories, a real bare git origin."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from lockstep import scaffold

import servers

# the unit tier's bed: local DVC remote, bare origin and SQLite MLflow store, no servers
pytest_plugins = ("localbed",)

# every `dvc` command a test runs as the developer would otherwise leave an analytics process
# behind (it cannot reach its server here), competing with the tests for the two cores
os.environ.setdefault("DVC_NO_ANALYTICS", "true")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example-project"
PROJECT = scaffold.EXAMPLE
BIN = Path(sys.executable).parent


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def git(*args: str, cwd: Path, check: bool = True) -> str:
    return run("git", *args, cwd=cwd, check=check).stdout.strip()


# the developer's DVC commands that run no stage: in this process, they cost no CLI start-up
# (about 0.7 s each); `dvc repro` and the others go on running as the developer's CLI
NO_STAGE_COMMANDS = frozenset({"init", "remote", "push", "pull", "add", "commit", "import", "config", "checkout"})


class DeveloperDvc(scaffold.Repo):
    """The scaffold's repository with `Repo.dvc` run in this process for commands that run no
    stage, through DVC's own CLI entry point, in the same environment the CLI would have."""

    def dvc(self, *args: str, cwd: Path | None = None) -> str:
        if not args or args[0] not in NO_STAGE_COMMANDS:
            return super().dvc(*args, cwd=cwd)
        from dvc import cli

        where = cwd or self.project
        env = scaffold.subprocess_env(self.env, mlflow=False)
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()) as out, \
                contextlib.redirect_stderr(io.StringIO()) as err:
            for key in list(os.environ):
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            patch.chdir(where)
            _rebind_dvc_logging()
            with warnings.catch_warnings():  # the CLI's warnings are printed, not this test bed's errors
                warnings.simplefilter("default")
                code = cli.main(list(args))
        _rebind_dvc_logging()
        if code != 0:
            raise AssertionError(f"dvc {' '.join(args)} in {where} exited {code}\n{out.getvalue()[-4000:]}\n{err.getvalue()[-4000:]}")
        return out.getvalue()


def _rebind_dvc_logging() -> None:
    """DVC binds its log handlers to sys.stdout/stderr when it is imported; under pytest those
    are one test's capture streams, closed when that test ends. Point them at this test's."""
    for name in ("dvc", "dvc_objects", "dvc_data"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = sys.stderr if handler.level >= logging.WARNING else sys.stdout


def pytest_collection_modifyitems(items):
    """A test that says neither integration nor e2e is in the unit tier (`bash .ci/run unit`)."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in ("integration", "e2e")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """Tests start outside GitHub Actions, with the venv's tools first on PATH."""
    for key in list(os.environ):
        if key.startswith(("GITHUB_", "INPUT_", "MLFLOW_", "RUNNER_")) or key in ("CI", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Dana Developer")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "dana@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Dana Developer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "dana@example.com")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    monkeypatch.chdir(tmp_path)


# --- servers ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = servers.start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, s3_server):
    import boto3

    workdir = tmp_path_factory.mktemp("mlflow")
    boto3.client("s3", endpoint_url=s3_server.url, **_boto_creds()).create_bucket(Bucket="mlflow-artifacts")
    server = servers.start_mlflow(workdir, s3_server.url, "mlflow-artifacts")
    yield server
    server.stop()


def _boto_creds() -> dict[str, str]:
    return {
        "aws_access_key_id": servers.AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": servers.AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": servers.AWS_ENV["AWS_DEFAULT_REGION"],
    }


@dataclass
class Bucket:
    name: str
    endpoint: str

    @property
    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_creds())

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def bucket(s3_server, monkeypatch) -> Bucket:
    """A fresh bucket, and the AWS environment that points DVC at the S3 server."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    for key, value in servers.AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    result = Bucket(name, s3_server.url)
    result.client.create_bucket(Bucket=name)
    return result


@pytest.fixture
def mlflow_env(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return mlflow_server


# --- repositories -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_example(tmp_path_factory) -> Path:
    """The example project (as the package ships it) after `dvc repro` from clean, once per
    session: its outputs and cache, which a consumer repository copies instead of training."""
    repo = scaffold.Repo.create(tmp_path_factory.mktemp("trained"))
    scaffold.copy_example(repo.project)
    repo.train()
    return repo.project


@dataclass(kw_only=True)
class Consumer(DeveloperDvc):
    """A consumer repository (lockstep.scaffold): a bare origin, and a developer's clone holding
    example-project, its DVC remote a bucket on the S3 server."""

    bucket: Bucket

    @property
    def model(self) -> str:
        return f"classifier-{self.bucket.name}"


@pytest.fixture
def consumer(tmp_path, bucket, trained_example) -> Consumer:
    """The example project trained by a developer, pushed to the bucket, committed on main."""
    result = Consumer.create(tmp_path / "consumer", bucket=bucket)
    # each test its own registered model on the shared MLflow server
    scaffold.first_model(result, remote=f"s3://{bucket.name}/dvc", trained=trained_example, model=result.model)
    return result


def lockstep(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (exit codes, stdout and the files it writes)."""
    return run(str(BIN / "lockstep"), *args, cwd=cwd, env=env, check=False)


@pytest.fixture
def api():
    """The local GitHub REST API test server; no schema error may be recorded by teardown."""
    from github_api import GitHubAPI

    server = GitHubAPI()
    yield server
    server.close()
    assert server.schema_errors == [], server.schema_errors


# --- act ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def actions_cache(tmp_path_factory):
    """One actions/cache store for the session, as one repository's cache serves all its runs."""
    return tmp_path_factory.mktemp("actions-cache")


@pytest.fixture(scope="session")
def _background():
    """One thread that removes finished act runners' files while the next test runs."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


@pytest.fixture
def act(tmp_path, actions_cache, _background):
    """The real workflow files, run under act (tests/actrunner.py)."""
    from actrunner import Act

    runner = Act(tmp_path / "act", cache=actions_cache)
    yield runner
    _background.submit(runner.cleanup)
