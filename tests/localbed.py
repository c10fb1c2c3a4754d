"""The unit tier's test bed: real DVC repositories and a real MLflow store, with no server.

The DVC remote is a local folder, git's origin a local bare repository, MLflow a SQLite file
(the Model Registry needs a database store). One trained consumer repository is built per
session; each test gets its own copy of the whole folder (a copy takes milliseconds, training
takes seconds), and calls `lockstep.cli.main` in this process, so coverage sees every line.

Layout of a bed (the DVC remote URL is relative, so a copy points at its own remote):

    origin.git/                     bare origin: `main` (first model) and `feature` (PR, re-trained)
    dev/example-project/            the developer's clone
    remote/                         the DVC remote
    mlflow.db                       an empty, migrated MLflow database
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lockstep import scaffold

from conftest import BIN, PROJECT, DeveloperDvc, _rebind_dvc_logging, git

# relative to example-project/.dvc/: a clone at <bed>/<name>/example-project reaches <bed>/remote
REMOTE_URL = "../../../remote"


@contextlib.contextmanager
def _dvc_repo(project: Path):
    """DVC in this process (no CLI start-up), stages run with the test environment's python."""
    from dvc.repo import Repo

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
        patch.chdir(project)
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            patch.delenv(key)
        _rebind_dvc_logging()
        with Repo(str(project)) as repo:
            yield repo


@pytest.fixture(scope="session")
def _mlflow_schema(tmp_path_factory):
    """An empty MLflow database with its schema migrated (~4 s), made in a thread while the
    session's DVC repositories are built."""
    path = tmp_path_factory.mktemp("mlflow-schema") / "mlflow.db"
    failure: list[BaseException] = []

    def create() -> None:
        try:
            from mlflow import MlflowClient

            MlflowClient(f"sqlite:///{path}").search_experiments()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            failure.append(exc)

    thread = threading.Thread(target=create, name="mlflow-schema")
    thread.start()

    def ready() -> Path:
        thread.join()
        if failure:
            raise failure[0]
        return path

    return ready


class _InProcess(DeveloperDvc):
    """The scaffold's repository with the developer's DVC commands run in this process."""

    def set_remote(self, url: str, *, endpoint: str | None = None) -> None:
        config = self.project / ".dvc" / "config"
        text = config.read_text()
        assert endpoint is None and "s3://lockstep-example/dvc" in text, text
        config.write_text(text.replace("s3://lockstep-example/dvc", url))

    def train(self) -> None:
        with _dvc_repo(self.project) as repo:
            repo.reproduce()


@pytest.fixture(scope="session")
def local_template(tmp_path_factory, _mlflow_schema, trained_example) -> Path:
    """The consumer repository (lockstep.scaffold), built once: main holds the first model,
    `feature` a PR that re-trained with 150 trees; both are pushed to the local remote and the
    bare origin."""
    repo = _InProcess.create(tmp_path_factory.mktemp("localbed"))
    repo.git("config", "user.name", "Dana Developer")
    repo.git("config", "user.email", "dana@example.com")
    scaffold.first_model(repo, remote=REMOTE_URL, trained=trained_example)
    scaffold.open_pr(repo, "feature", "n_estimators: 100", "n_estimators: 150", "More trees")
    repo.checkout("main")
    with _dvc_repo(repo.project) as dvc:
        dvc.checkout(force=True)
    shutil.copy(_mlflow_schema(), repo.root / "mlflow.db")
    return repo.root


@dataclass
class Run:
    """What one `lockstep` command did: its exit code, outputs, summary and log."""

    code: int
    outputs: dict[str, str]
    summary: str
    stdout: str
    stderr: str
    results: dict = field(default_factory=dict)

    @property
    def checks(self) -> dict[str, dict]:
        return {c["id"]: c for c in self.results.get("checks", [])}


@dataclass
class Bed:
    root: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture

    @property
    def origin(self) -> Path:
        return self.root / "origin.git"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    @property
    def project(self) -> Path:
        return self.dev / PROJECT

    @property
    def remote(self) -> Path:
        return self.root / "remote"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def use_mlflow(self) -> str:
        self.monkeypatch.setenv("MLFLOW_TRACKING_URI", self.tracking_uri)
        return self.tracking_uri

    def sha(self, ref: str) -> str:
        return git("rev-parse", ref, cwd=self.origin)

    def clone(self, name: str, branch: str = "main", depth: int | None = None) -> Path:
        target = self.root / name
        args = ["clone", "-q", "-b", branch, *(["--depth", str(depth)] if depth else [])]
        git(*args, f"file://{self.origin}", str(target), cwd=self.root)
        return target

    def commit_on(self, branch: str, message: str, change) -> str:
        """Check out `branch` in the developer's clone, apply `change(project)`, commit, push."""
        git("checkout", "-q", branch, cwd=self.dev)
        change(self.project)
        git("add", "-A", cwd=self.dev)
        git("commit", "-q", "-m", message, cwd=self.dev)
        git("push", "-q", "origin", f"HEAD:{branch}", cwd=self.dev)
        return git("rev-parse", "HEAD", cwd=self.dev)

    def cli(self, *argv: str, env: dict[str, str] | None = None, report_dir: Path | None = None) -> Run:
        """`lockstep.cli.main(argv)` in this process, inside GitHub Actions as far as it can tell:
        outputs and summary go to files, and the working directory is restored afterwards."""
        from lockstep import cli

        name = f"run{len(list(self.root.glob('run*-outputs.txt')))}"
        outputs, summary = self.root / f"{name}-outputs.txt", self.root / f"{name}-summary.md"
        outputs.touch()
        summary.touch()
        with self.monkeypatch.context() as patch:
            for key, value in {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs),
                               "GITHUB_STEP_SUMMARY": str(summary), **(env or {})}.items():
                patch.setenv(key, value)
            cwd = Path.cwd()
            self.capsys.readouterr()
            _rebind_dvc_logging()
            try:
                code = cli.main(list(argv))
            finally:
                os.chdir(cwd)
            captured = self.capsys.readouterr()
        results_file = (report_dir / "results.json") if report_dir else None
        results = json.loads(results_file.read_text()) if results_file and results_file.is_file() else {}
        return Run(code, parse_outputs(outputs.read_text()), summary.read_text(), captured.out, captured.err, results)


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT records (`name=value` and `name<<DELIM` heredocs) as a dict."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for item in lines:
                if item == delimiter:
                    break
                body.append(item)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


@pytest.fixture
def bed(local_template, tmp_path, monkeypatch, capsys) -> Bed:
    """A private copy of the session's consumer repository, its remote and its MLflow store."""
    root = tmp_path / "bed"
    shutil.copytree(local_template, root, symlinks=True)
    git("remote", "set-url", "origin", f"file://{root / 'origin.git'}", cwd=root / "dev")
    return Bed(root, monkeypatch, capsys)
