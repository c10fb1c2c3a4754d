"""A consumer repository on this machine, as a team using lockstep has one: a bare `origin`, a
developer's clone holding a DVC project (the packaged example by default), a DVC remote, and the
developer's own `dvc repro`, `dvc push`, commits and pull-request branches.

One scaffold for `lockstep demo`, the test bed (tests/conftest.py, tests/localbed.py) and the
benchmarks. It runs git and DVC as a developer types them, in subprocesses with an explicit
environment (never changing this process's), and raises `LockstepError` with the command's output
when one fails.

Layout of a repository made by `Repo.create(root)`:

    root/origin.git/            the bare origin (`main`, then pull-request branches)
    root/<dev>/                 the developer's clone; <dev>/<folder> is the DVC project
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import LockstepError

# the example project's folder in a consumer repository (and in lockstep's own repository)
EXAMPLE = "example-project"

# The example's files, as globs relative to its folder: exactly what pyproject.toml ships as the
# package data of `lockstep.example` (tests/test_demo.py checks both against `git ls-files`).
# A copy takes these and nothing else, so outputs and caches of a checkout's example never travel.
EXAMPLE_FILES = (
    ".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore", "dvc.yaml", "lockstep.yaml", "params.yaml",
    "requirements.txt", "src/*.py", "workflows/*.yml",
)

# who commits in a scaffold repository, unless the environment names someone
DEVELOPER = {
    "GIT_AUTHOR_NAME": "Dana Developer",
    "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Developer",
    "GIT_COMMITTER_EMAIL": "dana@example.com",
}


def example_project() -> Path:
    """The example project's folder: the package data of an installed lockstep, or
    example-project/ of the checkout an editable install points at."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "example", here.parents[1] / EXAMPLE):
        if (candidate / "lockstep.yaml").is_file() and (candidate / "dvc.yaml").is_file():
            return candidate
    raise LockstepError(
        f"the example project is not in this installation of lockstep ({here})",
        hint="reinstall lockstep (`pip install --force-reinstall lockstep`): its package data includes the example project",
    )


def example_model() -> str:
    """The registered model's name in the example's lockstep.yaml."""
    from . import config

    name = config.load(example_project(), required=True).model_name
    if not name:
        raise LockstepError("the example's lockstep.yaml names no model", hint="this is a packaging bug: please report it")
    return name


def example_files(source: Path | None = None) -> list[str]:
    """The example's files (EXAMPLE_FILES matched in `source`), as sorted relative paths."""
    source = source or example_project()
    found = {path.relative_to(source).as_posix() for pattern in EXAMPLE_FILES for path in source.glob(pattern) if path.is_file()}
    return sorted(found)


def copy_example(target: Path, source: Path | None = None) -> Path:
    """Copy the example project's files into `target` (made if missing); returns `target`."""
    source = source or example_project()
    for name in example_files(source):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
    return target


def subprocess_env(extra: Mapping[str, str] | None = None, *, mlflow: bool = True) -> dict[str, str]:
    """The environment for a scaffold command: this process's, the developer's identity where it
    names none, this interpreter's folder first on PATH (so `python` in a stage is this
    environment's), then `extra`. Without `mlflow`, no MLFLOW_* variable: a laptop run logs nothing."""
    env = {**DEVELOPER, **os.environ}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    if not mlflow:
        env = {key: value for key, value in env.items() if not key.startswith("MLFLOW_")}
    return env


def run(*argv: str, cwd: Path, env: Mapping[str, str] | None = None, mlflow: bool = True) -> str:
    """Run a fixed command; its stdout, or a LockstepError with the end of its output."""
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, env=subprocess_env(env, mlflow=mlflow))  # noqa: S603 - the scaffold's own fixed commands
    if proc.returncode != 0:
        raise LockstepError(
            f"`{' '.join(argv)}` in {cwd} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            hint="the scaffold's repositories are left as they were for a look",
        )
    return proc.stdout


R = TypeVar("R", bound="Repo")


@dataclass
class Repo:
    """A consumer repository: a bare origin, and a developer's clone holding a DVC project."""

    root: Path
    origin: Path
    dev: Path
    folder: str = EXAMPLE  # the DVC project's folder in the repository ("." at its root)
    env: dict[str, str] = field(default_factory=dict)  # over os.environ for every command

    @classmethod
    def create(cls: type[R], root: Path, *, dev: str = "dev", folder: str = EXAMPLE, env: Mapping[str, str] | None = None, **fields: Any) -> R:
        """An empty bare origin with `main`, and the developer's clone of it (`root/dev`);
        `fields` are a subclass's own."""
        root.mkdir(parents=True, exist_ok=True)
        repo = cls(root, root / "origin.git", root / dev, folder, dict(env or {}), **fields)
        repo.run("git", "init", "-q", "--bare", "-b", "main", str(repo.origin), cwd=root)
        repo.run("git", "init", "-q", "-b", "main", str(repo.dev), cwd=root)
        repo.git("remote", "add", "origin", f"file://{repo.origin}")
        return repo

    @property
    def project(self) -> Path:
        return self.dev / self.folder

    # --- commands -----------------------------------------------------------------------------

    def run(self, *argv: str, cwd: Path, mlflow: bool = True) -> str:
        return run(*argv, cwd=cwd, env=self.env, mlflow=mlflow)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """git in the developer's clone (or `cwd`); its stdout, stripped."""
        return self.run("git", *args, cwd=cwd or self.dev).strip()

    def dvc(self, *args: str, cwd: Path | None = None) -> str:
        """DVC in the project (or `cwd`) as on the developer's laptop: nothing logged to MLflow."""
        return self.run(sys.executable, "-m", "dvc", *args, cwd=cwd or self.project, mlflow=False)

    # --- what a developer does ----------------------------------------------------------------

    def set_remote(self, url: str, *, endpoint: str | None = None) -> None:
        """Make `url` the project's default DVC remote, `storage` (an S3 `endpoint` if given)."""
        self.dvc("remote", "add", "-f", "-d", "storage", url)
        if endpoint:
            self.dvc("remote", "modify", "storage", "endpointurl", endpoint)

    def train(self) -> None:
        """`dvc repro`: the developer's own run of the pipeline."""
        self.dvc("repro")

    def push_data(self) -> None:
        """`dvc push`: data and model to the DVC remote."""
        self.dvc("push")

    def set_param(self, old: str, new: str, file: str = "params.yaml") -> None:
        """Replace the text `old` (which must be there) with `new` in the project's params."""
        path = self.project / file
        text = path.read_text()
        if old not in text:
            raise LockstepError(f"{path} has no {old!r} to replace", hint="the scaffold's caller names a param the project does not have")
        path.write_text(text.replace(old, new))

    def commit(self, message: str, *, push: str | None = "main") -> str:
        """Commit everything in the clone and push it to `push` on origin; the new commit's SHA."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        if push:
            self.git("push", "-q", "origin", f"HEAD:{push}")
        return self.git("rev-parse", "HEAD")

    def checkout(self, branch: str, *, new: bool = False) -> None:
        self.git("checkout", "-q", *(["-b"] if new else []), branch)

    def clone(self, name: str, branch: str = "main", depth: int | None = None) -> Path:
        """A fresh clone of origin at `root/name`, as a CI runner checks it out."""
        target = self.root / name
        self.run("git", "clone", "-q", "-b", branch, *(["--depth", str(depth)] if depth else []), f"file://{self.origin}", str(target),
                 cwd=self.root)
        return target

    def origin_log(self, branch: str = "main") -> list[str]:
        return self.git("log", "--format=%H %an <%ae> %s", branch, cwd=self.origin).splitlines()


def first_model(repo: Repo, *, remote: str, endpoint: str | None = None, trained: Path | None = None, model: str | None = None) -> str:
    """The developer's first model on main, in a new repository (`Repo.create`): the example
    project copied (or `trained`, a copy of it after `dvc repro` with its outputs and cache, which
    saves the training), `remote` made its DVC remote, trained, pushed, and committed and pushed to
    origin's main as "First model". `model` renames the registered model. Returns the commit."""
    if trained is not None:
        shutil.copytree(trained, repo.project)
    else:
        copy_example(repo.project)
    repo.set_remote(remote, endpoint=endpoint)
    if model:
        config = repo.project / "lockstep.yaml"
        text, line = config.read_text(), f"name: {example_model()}"
        if line not in text:
            raise LockstepError(f"{config} has no {line!r} to rename", hint="`model` renames the example's model; name none for another project")
        config.write_text(text.replace(line, f"name: {model}"))
    if trained is None:
        repo.train()
    repo.push_data()
    return repo.commit("First model")


def open_pr(repo: Repo, branch: str, old: str, new: str, message: str) -> tuple[str, str]:
    """A pull request as a developer opens one: on a new `branch` from the current commit, the
    param `old` -> `new`, retrained, pushed to the DVC remote, committed and pushed to origin.
    The clone is left on `branch`. Returns (base SHA, head SHA)."""
    base = repo.git("rev-parse", "HEAD")
    repo.checkout(branch, new=True)
    repo.set_param(old, new)
    repo.train()
    repo.push_data()
    return base, repo.commit(message, push=branch)
