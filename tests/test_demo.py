"""`lockstep demo`, the README's first command, end to end from an installed package (built and
installed into a fresh environment, run from a folder outside the checkout), asserting the final
state; and what it stands on: the example project shipped as package data and copied by
lockstep.scaffold without a checkout's outputs and caches."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from lockstep import scaffold
from lockstep.errors import EXIT_USAGE

from conftest import BIN, EXAMPLE, ROOT, git, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_package_ships_the_example_project_files_and_nothing_else():
    tracked = sorted(path.removeprefix("example-project/") for path in git("ls-files", "example-project", cwd=ROOT).splitlines())
    assert scaffold.example_files(EXAMPLE) == tracked
    setuptools = _setuptools()
    assert setuptools["package-data"]["lockstep.example"] == list(scaffold.EXAMPLE_FILES)
    assert setuptools["package-dir"]["lockstep.example"] == "example-project"
    # the package list is explicit (for the example's mapping): every package of scripts/ is in it
    found = {".".join(init.parent.relative_to(ROOT / "scripts").parts) for init in (ROOT / "scripts").rglob("__init__.py")}
    assert set(setuptools["packages"]) == found | {"lockstep.example"}


def test_in_a_checkout_the_example_is_the_checkouts_and_its_names_come_from_its_config():
    assert scaffold.example_project() == EXAMPLE
    assert scaffold.example_model() == "breast-cancer-classifier"


def test_a_copy_of_the_example_leaves_outputs_and_caches_behind(tmp_path):
    source = scaffold.copy_example(tmp_path / "checkout")
    for junk in (".dvc/cache/files/md5/ab/cdef", ".dvc/tmp/lock", "dvc.lock", "models/model.pkl", "data/prepared/train.csv",
                 "metrics.json", "plots/confusion.csv", ".lockstep/report.md", "src/__pycache__/train.cpython-311.pyc"):
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("generated")
    copy = scaffold.copy_example(tmp_path / "copy", source)
    copied = sorted(path.relative_to(copy).as_posix() for path in copy.rglob("*") if path.is_file())
    assert copied == scaffold.example_files(EXAMPLE)
    assert (copy / "lockstep.yaml").read_text() == (EXAMPLE / "lockstep.yaml").read_text()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """lockstep built (sdist, then the wheel from it) and installed, without its demo extra, into
    a fresh environment: as `pip install lockstep` gives it to someone without a checkout."""
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (bash .ci/run installs it)"
    base = tmp_path_factory.mktemp("installed")
    run(uv, "build", "-q", "--out-dir", str(base / "dist"), str(ROOT), cwd=base)
    (wheel,) = (base / "dist").glob("lockstep-*.whl")
    venv = base / "venv"
    run(uv, "venv", "-q", "--python", sys.executable, str(venv), cwd=base)
    run(uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-c", str(ROOT / "constraints.txt"), str(wheel), cwd=base)
    return venv


def _outside(venv: Path) -> dict[str, str]:
    """The installed environment first on PATH, and nothing of the checkout's. Its bytecode is
    written as modules are first imported (installed without it: compiling everything costs more
    than the demo imports), as Python does unless PYTHONDONTWRITEBYTECODE says otherwise."""
    path = [entry for entry in os.environ["PATH"].split(os.pathsep) if entry and Path(entry) != BIN]
    return {"PATH": os.pathsep.join([str(venv / "bin"), *path]), "VIRTUAL_ENV": str(venv), "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": ""}


@pytest.mark.integration
def test_demo_tells_the_whole_story_from_an_installed_package(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _outside(installed)
    lockstep = str(installed / "bin" / "lockstep")
    located = run(str(installed / "bin" / "python"), "-c", "from lockstep import scaffold; print(scaffold.__file__); print(scaffold.example_project())",
                  cwd=elsewhere, env=env).stdout.splitlines()
    assert all(Path(line).is_relative_to(installed) for line in located), located

    # without the demo extra: a usage error that says what to install, and nothing made
    workdir = tmp_path / "demo"
    proc = run(lockstep, "demo", "--workdir", str(workdir), cwd=elsewhere, env=env, check=False)
    assert proc.returncode == EXIT_USAGE, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'pip install "lockstep[demo]"' in proc.stdout + proc.stderr
    assert not workdir.exists()

    (wheel,) = (installed.parent / "dist").glob("lockstep-*.whl")
    run(shutil.which("uv") or "uv", "pip", "install", "-q", "--python", str(installed / "bin" / "python"), "-c", str(ROOT / "constraints.txt"),
        f"lockstep[demo] @ {wheel.as_uri()}", cwd=elsewhere, env=env)
    proc = run(lockstep, "demo", "--workdir", str(workdir), cwd=elsewhere, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = git("log", "--format=%an|%s", "main", cwd=workdir / "origin.git").splitlines()
    assert log[0].startswith("github-actions[bot]|lockstep: rebuild train, evaluate on ")
    assert log[0].endswith("[skip ci]")
    assert [line.split("|")[1] for line in log[1:]] == ["Merge pull request #1 from more-trees", "More trees", "First model"]
    comment = (workdir / "pr-comment.md").read_text()
    assert comment.startswith("<!-- lockstep:report project=example-project -->\n## ✅ lockstep")
    assert "| train.n\\_estimators | 100 | 200 |" in comment

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}")
    versions = {str(v.version): v for v in client.search_model_versions("name='breast-cancer-classifier'")}
    assert sorted(versions) == ["1", "2", "3"]
    aliases = {k: str(v) for k, v in client.get_registered_model("breast-cancer-classifier").aliases.items()}
    assert aliases == {"candidate": "3", "champion": "2"}
    assert versions["2"].tags["lockstep.rollback.reason"] == "demo rollback"
    assert versions["3"].tags["lockstep.trigger"] == "workflow_dispatch"
    assert client.get_experiment_by_name("lockstep/example/ml-repo/example-project") is not None
    assert "Open the MLflow UI: mlflow ui --backend-store-uri sqlite:///" in proc.stdout
