"""Stage commands written for a developer's environment manager (`poetry run`, `uv run`,
`pipenv run`, `conda run`) and the project's own console scripts, run by `dvcrepo.reproduce` in the
environment lockstep installed (lockstep/envrun.py), on real DVC repositories in tmp_path: the
fixture tests/projects/env-manager-run (a Poetry project whose stages go through `poetry run`, a
`[tool.poetry.scripts]` entry and `uv run`), and one-stage projects for the rest. This machine, as
a runner, has no Poetry, pipenv or conda; uv is there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockstep import dvcrepo, envrun
from lockstep.errors import DvcError

pytestmark = pytest.mark.unit
FIXTURE = Path(__file__).parent / "projects" / "env-manager-run"
PREFIX = "import sys, pathlib; pathlib.Path('prefix.txt').write_text(sys.prefix)"


def _venv() -> Path:
    """The environment of the PATH's `python`, which the stages run in (as the setup action's)."""
    python = shutil.which("python")
    assert python is not None
    return Path(python).parent.parent


def _project(tmp_path: Path, dvc_yaml: str | None = None) -> Path:
    project = tmp_path / "ml"
    if dvc_yaml is None:
        shutil.copytree(FIXTURE, project)
    else:
        project.mkdir()
        (project / "dvc.yaml").write_text(dvc_yaml)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=project, check=True)
    return project


def _env() -> dict[str, str]:
    # offline: a uv that would sync an environment of its own fails at once instead of downloading
    env = {**os.environ, "DVC_NO_ANALYTICS": "true", "UV_OFFLINE": "1"}
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_NO_SYNC"):
        env.pop(name, None)
    return env


@pytest.fixture(autouse=True)
def _no_managers():
    if any(shutil.which(tool) for tool in ("poetry", "pipenv", "conda")):
        pytest.skip("this machine has a real environment manager; the tests are of a runner without one")


def test_poetry_run_a_poetry_console_script_and_uv_run_reproduce_in_lockstep_s_environment(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    dvcrepo.reproduce(project, ["prepare", "train", "evaluate"], env=_env())
    assert sorted(path.name for path in (project / "data").iterdir()) == ["test.csv", "train.csv"]
    assert "threshold" in json.loads((project / "models" / "model.json").read_text())
    assert json.loads((project / "metrics.json").read_text())["accuracy"] > 0.5
    # uv ran in the PATH's environment: it built none of its own and wrote no lock
    assert not (project / ".venv").exists() and not (project / "uv.lock").exists()


@pytest.mark.parametrize("command", [
    "poetry run python -c \"{code}\"",
    "poetry -C . --no-interaction run -- python -c \"{code}\"",
    "pipenv run python -c \"{code}\"",
    "conda run -n ml --no-capture-output python -c \"{code}\"",
    "micromamba run -p /opt/envs/ml python -c \"{code}\"",
])
def test_a_manager_s_run_is_the_command_in_the_environment_lockstep_installed(tmp_path, monkeypatch, command):
    project = _project(tmp_path, "stages:\n  evaluate:\n    cmd: " + command.format(code=PREFIX) + "\n")
    monkeypatch.chdir(tmp_path)
    dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert Path((project / "prefix.txt").read_text()) == Path(sys.prefix)
    assert Path(sys.prefix).resolve() == _venv().resolve()


def test_uv_run_in_a_project_without_a_lock_neither_syncs_nor_writes_one(tmp_path, monkeypatch):
    """`[project]` with a dependency nothing installed: a uv left to itself would resolve, write
    uv.lock and build .venv (here, offline, it fails); pointed at lockstep's environment it runs."""
    project = _project(tmp_path, f"stages:\n  evaluate:\n    cmd: uv run python -c \"{PREFIX}\"\n")
    (project / "pyproject.toml").write_text('[project]\nname = "churn"\nversion = "0.1.0"\n'
                                            'requires-python = ">=3.10"\ndependencies = ["not-installed-anywhere>=1"]\n')
    monkeypatch.chdir(tmp_path)
    dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert Path((project / "prefix.txt").read_text()) == Path(sys.prefix)
    assert not (project / ".venv").exists() and not (project / "uv.lock").exists()


def test_a_console_script_of_the_project_runs_from_the_checkout_with_its_arguments(tmp_path, monkeypatch):
    """`[project.scripts]` in a src/ layout, never installed: the script imports the checkout's code."""
    project = _project(tmp_path, "stages:\n  evaluate:\n    cmd: churn-eval --split test\n")
    (project / "src" / "churn").mkdir(parents=True)
    (project / "src" / "churn" / "__init__.py").write_text("")
    (project / "src" / "churn" / "cli.py").write_text(
        "import json, sys\n\ndef evaluate():\n    json.dump(sys.argv, open('argv.json', 'w'))\n    return 0\n")
    (project / "pyproject.toml").write_text('[project]\nname = "churn"\nversion = "0.1.0"\n'
                                            '[project.scripts]\nchurn-eval = "churn.cli:evaluate"\n')
    monkeypatch.chdir(tmp_path)
    dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert json.loads((project / "argv.json").read_text()) == ["churn-eval", "--split", "test"]


def test_a_manager_command_other_than_run_fails_the_stage_saying_what_to_do(tmp_path, monkeypatch):
    project = _project(tmp_path, "stages:\n  evaluate:\n    cmd: poetry install --no-root && python evaluate.py\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert "stage 'evaluate' failed" in failed.value.message
    assert "`poetry install --no-root` in a stage's command" in failed.value.message
    assert "provides only `poetry run CMD`" in failed.value.message


def test_a_command_the_runner_does_not_have_is_named_with_what_to_do(tmp_path, monkeypatch):
    project = _project(tmp_path, "stages:\n  evaluate:\n    cmd: lockstep-test-absent-tool evaluate.R\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKSTEP_PROJECT_REQUIREMENTS", "requirements.txt ")
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert failed.value.hint.startswith("the stage's command runs `lockstep-test-absent-tool`, which is not installed where "
                                        "the stages run: lockstep installs the project's requirements (from ")
    assert "`[project.scripts]`" in failed.value.hint


def test_console_scripts_are_read_as_data_nearest_file_first(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mono"\nversion = "1"\n[project.scripts]\n'
                                             'train = "tools.cli:root_train"\nlint = "tools.cli:lint"\n')
    project = tmp_path / "ml"
    (project / "churn").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.poetry.scripts]\ntrain = "churn.cli:train"\nserve = {reference = "churn.api:app.run", type = "console"}\n'
        'notes = {reference = "notes.sh", type = "file"}\nfetch = "requests.cli:main"\n"bad name" = "churn:x"\n')
    scripts = envrun.project_scripts(project)
    assert scripts == {
        "train": ("churn.cli", "train", [str(project.resolve())]),
        "serve": ("churn.api", "app.run", [str(project.resolve())]),
        "lint": ("tools.cli", "lint", [str(tmp_path.resolve())]),
    }  # a file script, a module not in the checkout and a name no shell runs are left out
