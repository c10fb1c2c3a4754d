"""Stage commands written for a developer's environment manager (`poetry run`, `uv run`,
`pipenv run`, `conda run`, `pdm run`, `hatch run`) and the project's own console scripts, run by
`dvcrepo.reproduce` in the environment lockstep installed (lockstep/envrun.py), on real DVC
repositories in tmp_path: the fixture tests/projects/env-manager-run (a Poetry project whose stages
go through `poetry run`, a `[tool.poetry.scripts]` entry and `uv run`), and one-stage projects for
the rest. PDM's and Hatch's scripts (lockstep/scriptrun.py) are also run through the shims by `sh`
directly, as a stage's command would be. This machine, as a runner, has no Poetry, pipenv, conda,
PDM or Hatch; uv is there."""

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
    if any(shutil.which(tool) for tool in ("poetry", "pipenv", "conda", "pdm", "hatch")):
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


# -- `pdm run` and `hatch run`: scripts the project declares, expanded by envrun and run by scriptrun

RECORD = '''import json, os, sys
from pathlib import Path


def main(name="record", argv=None):
    argv = sys.argv[1:] if argv is None else argv
    Path(f"{name}.json").write_text(json.dumps({"argv": argv, "split": os.environ.get("SPLIT"), "cwd": os.getcwd()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
'''

PDM_PYPROJECT = '''[project]
name = "churn"
version = "0.1.0"

[tool.pdm.scripts]
_.env = {SPLIT = "test"}
prepare = "python -m churn.record prepare --seed {args:7}"
features = {cmd = ["python", "-m", "churn.record", "features"]}
report = {shell = "cat features.json | tr a-z A-Z > REPORT.txt"}
train = {call = "churn.record:main('train')"}
pre_train = "python -m churn.record pre_train"
post_train = {shell = "echo done > post_train.txt"}
dotenv = {shell = "echo $CHURN_DATA > data.txt", env_file = ".env"}
evaluate = {cmd = "python ../churn/record.py evaluate ${EPOCHS}", working_dir = "out", env = {EPOCHS = "3"}}
all = {composite = ["prepare 3", "features --rows 10", "report"], env = {SPLIT = "valid"}}
broken = {composite = ["python -c 'raise SystemExit(3)'", "report"]}
patient = {composite = ["python -c 'raise SystemExit(3)'", "report"], keep_going = true}
'''


def _stage_env(tmp_path: Path, project: Path) -> dict[str, str]:
    return envrun.prepare(_env(), project, tmp_path / "shims")


def _sh(command: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], cwd=project, env=env, capture_output=True, text=True, timeout=120)


def _recorded(project: Path, name: str) -> dict:
    return json.loads((project / f"{name}.json").read_text())


def _scripted_project(tmp_path: Path, pyproject: str, dvc_yaml: str = "stages: {}\n") -> Path:
    project = _project(tmp_path, dvc_yaml)
    (project / "churn").mkdir()
    (project / "churn" / "__init__.py").write_text("")
    (project / "churn" / "record.py").write_text(RECORD)
    (project / "pyproject.toml").write_text(pyproject)
    return project


def test_pdm_run_runs_the_project_s_cmd_shell_and_call_scripts_with_their_options(tmp_path):
    project = _scripted_project(tmp_path, PDM_PYPROJECT)
    (project / "out").mkdir()
    (project / ".env").write_text("# read by PDM\nCHURN_DATA='/data/churn'\n")
    env = _stage_env(tmp_path, project)
    for command in ("pdm run prepare", "pdm run -v features --rows '10 000'", "pdm run report", "pdm run train --epochs 2",
                    "pdm run evaluate", "pdm run dotenv"):
        ran = _sh(command, project, env)
        assert ran.returncode == 0, (command, ran.stderr)
    assert _recorded(project, "prepare")["argv"] == ["--seed", "7"]  # the placeholder's default
    assert _recorded(project, "features") == {"argv": ["--rows", "10 000"], "split": "test", "cwd": str(project.resolve())}
    assert "--ROWS" in (project / "REPORT.txt").read_text()  # through a shell: the pipe and the redirection
    assert _recorded(project, "train")["argv"] == ["--epochs", "2"]  # imported from the checkout, called with 'train'
    assert (project / "pre_train.json").is_file() and (project / "post_train.txt").is_file()
    assert _recorded(project / "out", "evaluate") == {"argv": ["3"], "split": "test", "cwd": str((project / "out").resolve())}
    assert (project / "data.txt").read_text() == "/data/churn\n"


def test_pdm_run_of_a_composite_passes_its_env_and_stops_at_the_first_failure_unless_told_to_keep_going(tmp_path):
    project = _scripted_project(tmp_path, PDM_PYPROJECT)
    env = _stage_env(tmp_path, project)
    assert _sh("pdm run all", project, env).returncode == 0
    assert _recorded(project, "prepare")["argv"] == ["--seed", "3"]
    assert _recorded(project, "features") == {"argv": ["--rows", "10"], "split": "valid", "cwd": str(project.resolve())}
    (project / "REPORT.txt").unlink()
    assert _sh("pdm run broken", project, env).returncode == 3
    assert not (project / "REPORT.txt").exists()
    assert _sh("pdm run patient", project, env).returncode == 3
    assert (project / "REPORT.txt").is_file()


def test_pdm_run_of_a_command_that_is_no_script_runs_it_and_skip_leaves_hooks_out(tmp_path):
    project = _scripted_project(tmp_path, PDM_PYPROJECT)
    env = _stage_env(tmp_path, project)
    ran = _sh(f"pdm run -p . --skip pre_train,post_train train && pdm run python -c \"{PREFIX}\"", project, env)
    assert ran.returncode == 0, ran.stderr
    assert (project / "train.json").is_file()
    assert not (project / "pre_train.json").exists() and not (project / "post_train.txt").exists()
    assert Path((project / "prefix.txt").read_text()) == Path(sys.prefix)


HATCH_PYPROJECT = '''[project]
name = "churn"
version = "0.1.0"

[tool.hatch.envs.default.env-vars]
SPLIT = "test"

[tool.hatch.envs.default.scripts]
prepare = "python -m churn.record prepare --seed {args:7}"
features = [
  "prepare 5",
  "- python -c 'raise SystemExit(1)'",
  "python -m churn.record features {args}",
]
braces = "python -c \\"import json; json.dump({{'root': '{root}'}}, open('braces.json', 'w'))\\""

[tool.hatch.envs.test]
dependencies = ["pytest"]
extra-dependencies = ["pytest-cov"]

[tool.hatch.envs.test.scripts]
check = "python -m churn.record check {args}"

[tool.hatch.envs.docs]
detached = true

[tool.hatch.envs.docs.env-vars]
SPLIT = "docs"
'''


def test_hatch_run_runs_the_environment_s_scripts_through_a_shell_as_hatch_expands_them(tmp_path):
    project = _scripted_project(tmp_path, HATCH_PYPROJECT)
    env = _stage_env(tmp_path, project)
    ran = _sh("hatch run features --rows 10", project, env)
    assert ran.returncode == 0, ran.stderr
    assert "lockstep: hatch environment" not in ran.stderr
    # Hatch gives the arguments to every {args}, the nested script's own words after; `- ` let one fail
    assert _recorded(project, "prepare")["argv"] == ["--seed", "--rows", "10", "5"]
    assert _recorded(project, "features") == {"argv": ["--rows", "10"], "split": "test", "cwd": str(project.resolve())}
    ran = _sh("hatch run prepare && hatch run braces", project, env)
    assert ran.returncode == 0, ran.stderr
    assert _recorded(project, "prepare")["argv"] == ["--seed", "7"]  # the placeholder's default
    assert json.loads((project / "braces.json").read_text()) == {"root": str(project.resolve())}


def test_hatch_run_in_another_environment_warns_of_the_dependencies_lockstep_does_not_install(tmp_path):
    project = _scripted_project(tmp_path, HATCH_PYPROJECT)
    env = _stage_env(tmp_path, project)
    ran = _sh("hatch run test:check -k fast && hatch -e docs run python -m churn.record docs"
              " && hatch env run -e docs -- python -m churn.record docs2", project, env)
    assert ran.returncode == 0, ran.stderr
    assert _recorded(project, "check") == {"argv": ["-k", "fast"], "split": "test", "cwd": str(project.resolve())}
    assert _recorded(project, "docs")["split"] == "docs"  # detached: its own env-vars, not default's
    assert _recorded(project, "docs2")["split"] == "docs"
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("lockstep: hatch environment")]
    assert len(warnings) == 1 and "`test`" in warnings[0] and "(pytest, pytest-cov)" in warnings[0]
    assert "project's requirements" in warnings[0]
    unknown = _sh("hatch run lint:check", project, env)
    assert unknown.returncode == 2 and "environment `lint` is not defined" in unknown.stderr


def test_pdm_and_hatch_scripts_reproduce_as_stages(tmp_path, monkeypatch, capsys):
    dvc_yaml = ("stages:\n  prepare:\n    cmd: pdm run prepare 11\n    deps: [churn/record.py]\n    outs: [prepare.json]\n"
                "  check:\n    cmd: hatch run test:check --rows 4\n    deps: [prepare.json]\n    outs: [check.json]\n")
    project = _scripted_project(tmp_path, PDM_PYPROJECT + "\n" + HATCH_PYPROJECT.split("\n\n", 1)[1], dvc_yaml)
    monkeypatch.chdir(tmp_path)
    dvcrepo.reproduce(project, ["prepare", "check"], env=_env())
    assert _recorded(project, "prepare")["argv"] == ["--seed", "11"]
    assert _recorded(project, "check") == {"argv": ["--rows", "4"], "split": "test", "cwd": str(project.resolve())}
    assert "lockstep: hatch environment `test` declares dependencies" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "said"), [
    ("pdm install --prod", "`pdm install --prod` in a stage's command"),
    ("hatch env create", "`hatch env create` in a stage's command"),
])
def test_a_pdm_or_hatch_command_other_than_run_fails_the_stage_saying_what_to_do(tmp_path, monkeypatch, command, said):
    project = _project(tmp_path, f"stages:\n  evaluate:\n    cmd: {command} && touch evaluated.txt\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert not (project / "evaluated.txt").exists()
    assert said in failed.value.message
    assert f"provides only `{command.split()[0]} run CMD`" in failed.value.message


def test_a_pdm_script_s_command_the_runner_does_not_have_is_named_with_what_to_do(tmp_path, monkeypatch):
    project = _scripted_project(tmp_path, '[tool.pdm.scripts]\nfit = "lockstep-test-absent-tool fit.R"\n',
                                "stages:\n  evaluate:\n    cmd: pdm run fit\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKSTEP_PROJECT_REQUIREMENTS", "requirements.txt ")
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env=_env())
    assert failed.value.hint.startswith("the stage's command runs `lockstep-test-absent-tool`, which is not installed")


def test_pdm_and_hatch_scripts_are_read_as_data_nearest_file_first(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pdm.scripts]\nlint = "ruff check ."\n_ = {env_file = {override = ".env"}, working_dir = "ml"}\n'
        'odd = {cmd = "a", shell = "b"}\nlisted = {composite = "not a list"}\n'
        '[tool.hatch.envs.default.scripts]\nlint = "ruff check ."\n')
    project = tmp_path / "ml"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.hatch.envs.default]\ndependencies = ["numpy"]\n[tool.hatch.envs.default.scripts]\n'
        'fit = "python fit.py {args}"\nall = ["- fit --fast", "echo done"]\nloop = "again"\nagain = "loop"\n'
        '[tool.hatch.envs.gpu]\nextra-dependencies = ["torch"]\n[tool.hatch.envs.gpu.scripts]\nfit = "python fit.py --gpu"\n'
        '[tool.hatch.envs.lint]\ntemplate = "lint"\n')
    (project / "hatch.toml").write_text('[envs.lint.scripts]\nstyle = "ruff format --check"\n')
    found = envrun.manager_scripts(project)
    root, ml = str(tmp_path.resolve()), str(project.resolve())
    assert found["pdm"] == {
        ml: {"scripts": {}, "shared": {}},
        root: {"scripts": {"lint": {"kind": "cmd", "value": "ruff check ."}},  # the two invalid entries left out
               "shared": {"env_file": {"path": ".env", "override": True}, "working_dir": "ml"}},
    }
    # hatch.toml's `envs` wins over pyproject.toml's whole: only `lint` (and `default`, always there)
    assert found["hatch"][ml]["envs"] == {
        "default": {"scripts": {}, "env_vars": {}, "dependencies": []},
        "lint": {"scripts": {"style": ["ruff format --check"]}, "env_vars": {}, "dependencies": []},
    }
    (project / "hatch.toml").unlink()
    envs = envrun.manager_scripts(project)["hatch"][ml]["envs"]
    assert envs["default"]["scripts"] == {"fit": ["python fit.py {args}"], "all": ["- python fit.py {args} --fast", "echo done"]}
    assert envs["gpu"] == {"scripts": {"fit": ["python fit.py --gpu"], "all": ["- python fit.py --gpu --fast", "echo done"]},
                           "env_vars": {}, "dependencies": ["numpy", "torch"]}  # default's scripts and dependencies inherited
    assert envs["lint"] == {"scripts": {}, "env_vars": {}, "dependencies": []}  # its own template: nothing inherited
