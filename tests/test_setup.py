"""The setup action's decisions, run for real with uv: which Python, which requirement files
(any common layout), which DVC extras the project's remotes need, and that the install of the
project's requirements (code the pull request controls) runs without the runner's tokens."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "actions" / "setup" / "setup.sh"


def setup(command: str, project: Path, tmp_path: Path, *, end_group: bool = False, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run setup.sh as the action's step would; `end_group` then kills what is left in the step's
    process group, as a runner may when a step ends."""
    outputs = tmp_path / "outputs.txt"
    outputs.write_text("")
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "SETUP_"))},
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "GITHUB_ACTION_PATH": str(SETUP.parent),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_PATH": str(tmp_path / "path.txt"),
        "SETUP_WORKING_DIRECTORY": str(project),
        **env,
    }
    with subprocess.Popen(["bash", str(SETUP), command], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=variables, start_new_session=end_group) as step:
        stdout, stderr = step.communicate()
    if end_group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(step.pid, signal.SIGKILL)
    proc = subprocess.CompletedProcess(step.args, step.returncode, stdout, stderr)
    values, lines = {}, iter(outputs.read_text().splitlines())
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            values[name] = "\n".join(iter(lambda: next(lines), delimiter))
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return proc, values


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "project"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def installed(tmp_path: Path, module: str) -> bool:
    python = tmp_path / "runner" / "lockstep" / "project" / "bin" / "python"
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"requirements.txt": "pyyaml\n"}, "requirements.txt"),
        ({"src/requirements.txt": "pyyaml\n"}, "src/requirements.txt"),
        ({"pyproject.toml": "[project]\nname = 'x'\nversion = '0'\ndependencies = ['pyyaml']\n"}, "pyproject.toml"),
        ({"pyproject.toml": "[tool.ruff]\nline-length = 120\n", "setup.py": "from setuptools import setup\nsetup()\n"},
         "pyproject.toml"),  # a setup.py project: pyproject.toml may hold only its build and tools' settings
        ({"pyproject.toml": "[tool.black]\nline-length = 100\n", "environment.yml": "dependencies:\n  - pyyaml\n"},
         "environment.yml"),  # tools' settings only: no dependencies there
        ({"pyproject.toml": "[tool.black]\nline-length = 100\n"}, ""),
        ({"setup.py": "from setuptools import setup\nsetup(install_requires=['pyyaml'])\n"}, "setup.py"),
        ({"environment.yaml": "dependencies:\n  - pyyaml\n"}, "environment.yaml"),
        ({"dvc.yaml": "stages: {}\n"}, ""),
    ],
    ids=["requirements.txt", "src/requirements.txt", "pyproject.toml", "pyproject-beside-setup.py", "tools-pyproject-and-conda",
         "tools-pyproject-only", "setup.py", "environment.yaml", "none"],
)
def test_the_default_requirements_are_the_first_common_layout_found(files, expected, tmp_path):
    folder = project(tmp_path, files)
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert values["requirements"] == (f"{folder}/{expected}" if expected else "")
    assert values["python-version"] == "3.11"


def test_a_project_in_a_sub_folder_takes_the_requirements_at_the_repository_root(tmp_path):
    """The workspace is the repository's root (the step's working directory): a DVC project in a
    sub-folder with no requirements file of its own is installed from the root's."""
    (tmp_path / "requirements.txt").write_text("pyyaml\n")
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n"})
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert values["requirements"] == "requirements.txt"  # as setup-uv's cache glob sees it, from the workspace
    proc, _ = setup("project", folder, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing the project's requirements from " + f"{folder}/../requirements.txt" in proc.stdout
    assert installed(tmp_path, "yaml")
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\ndependencies = []\n")
    assert setup("plan", folder, tmp_path)[1]["requirements"] == f"{folder}/pyproject.toml"  # its own comes first


@pytest.mark.parametrize(("pyproject", "expected"), [
    ("[project]\nname = 'x'\nversion = '0'\nrequires-python = '>=3.12'\n", "3.12"),
    ("[project]\nname = 'x'\nversion = '0'\nrequires-python = '>=3.8,<3.11'\n", "3.10"),
    ("[project]\nname = 'x'\nversion = '0'\nrequires-python = '>=3.9'\n", "3.11"),
    ("[tool.poetry.dependencies]\npython = '^3.13'\npyyaml = '^6.0'\n", "3.13"),
    ("[project]\nname = 'x'\nversion = '0'\nrequires-python = '>=3.99'\n", "3.11"),  # none a runner has: the default
    ("[project\n", "3.11"),  # unreadable: the default
], ids=["at-least-3.12", "below-3.11", "default-accepted", "poetry", "impossible", "broken"])
def test_python_version_follows_what_pyproject_toml_accepts(tmp_path, pyproject, expected):
    folder = project(tmp_path, {"pyproject.toml": pyproject})
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert values["python-version"] == expected
    (folder / ".python-version").write_text("3.10\n")  # a .python-version file says it outright
    assert setup("plan", folder, tmp_path)[1]["python-version"] == "3.10"


def test_python_version_comes_from_the_projects_python_version_file(tmp_path):
    folder = project(tmp_path, {".python-version": "3.12.4\n"})
    assert setup("plan", folder, tmp_path)[1]["python-version"] == "3.12.4"
    assert setup("plan", folder, tmp_path, SETUP_PYTHON_VERSION="3.10")[1]["python-version"] == "3.10"
    bad = project(tmp_path, {".python-version": "$(touch x)\n"})
    proc, values = setup("plan", bad, tmp_path)  # no version: named, left aside, never run
    assert proc.returncode == 0 and values["python-version"] == "3.11" and "which is no Python version" in proc.stderr
    proc, _ = setup("plan", bad, tmp_path, SETUP_PYTHON_VERSION="$(touch x)")
    assert proc.returncode == 2 and "is not a version" in proc.stderr
    assert not list(tmp_path.rglob("x"))


@pytest.mark.parametrize(("files", "expected"), [
    ({"runtime.txt": "python-3.12.4\n"}, "3.12.4"),
    ({"Dockerfile": "FROM --platform=linux/amd64 python:3.10-slim AS train\n"}, "3.10"),
    ({"setup.cfg": "[metadata]\nname = churn\n[options]\npython_requires = >=3.12\n"}, "3.12"),
    ({".tool-versions": "python 3.13.1\n", "Dockerfile": "FROM python:3.12\n"}, "3.13.1"),
    ({"runtime.txt": "python-3.12.4\n", ".python-version": "3.10\n"}, "3.10"),  # .python-version first
    ({"Dockerfile": "FROM python:3.12\n", "pyproject.toml": "[project]\nname = 'x'\nversion = '0'\nrequires-python = '>=3.13'\n"},
     "3.13"),  # pyproject.toml first
], ids=["runtime.txt", "dockerfile", "setup.cfg", "tool-versions-before-dockerfile", "python-version-first", "pyproject-first"])
def test_python_version_comes_from_the_files_other_tools_read_it_from(tmp_path, files, expected):
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n", **files})
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0 and values["python-version"] == expected, proc.stderr


def test_a_sub_folder_project_takes_the_python_of_the_dockerfile_at_the_root(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM python:3.12-slim\n")
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n"})
    assert setup("plan", folder, tmp_path)[1]["python-version"] == "3.12"
    (folder / "runtime.txt").write_text("python-3.13.0\n")
    assert setup("plan", folder, tmp_path)[1]["python-version"] == "3.13.0"


def test_a_python_below_3_10_from_setup_cfg_fails_the_setup_naming_its_line(tmp_path):
    folder = project(tmp_path, {"requirements.txt": "scikit-learn==0.24.2\n",
                                "setup.cfg": "[metadata]\nname = churn\n\n[options]\npython_requires = >=3.6, <3.10\n"})
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 2 and "python-version" not in values
    assert f"the project asks for Python 3.9 (from {folder}/setup.cfg:5: `python_requires = >=3.6, <3.10`)" in proc.stderr
    assert "set the `python-version` input to 3.10 or newer if the stages run there, and raise the requirements pinned" in proc.stderr
    proc, values = setup("plan", folder, tmp_path, SETUP_PYTHON_VERSION="3.10")  # what the message says to do
    assert proc.returncode == 0 and values["python-version"] == "3.10", proc.stderr


def test_a_pinned_python_below_3_10_in_a_dockerfile_warns_and_the_default_runs_the_stages(tmp_path):
    folder = project(tmp_path, {"requirements.txt": "pyyaml\n", "Dockerfile": "# serving\nFROM python:3.8-slim\n"})
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0 and values["python-version"] == "3.11", proc.stderr
    assert f"{folder}/Dockerfile:2: `FROM python:3.8-slim` asks for Python 3.8, and lockstep needs 3.10 or newer" in proc.stderr
    assert "the stages run on Python 3.11, the default" in proc.stderr


def test_dvc_extras_follow_the_remotes_url_schemes(tmp_path):
    folder = project(tmp_path, {".dvc/config": (
        "[core]\n    remote = gcs\n['remote \"gcs\"']\n    url = gs://bucket/dvc\n"
        "['remote \"web\"']\n    url = https://dagshub.com/acme/x.dvc\n['remote \"s3\"']\n    url = s3://b/p\n"
        "['remote \"drive\"']\n    url = gdrive://0AIac4JZqHhKmUk9PDA/dvcstore\n"
        "['remote \"lake\"']\n    url = webhdfs://namenode:9870/dvc\n"
    )})
    assert setup("plan", folder, tmp_path)[1]["dvc-extras"] == "gdrive,gs,webhdfs"


def test_pyproject_extras_and_several_files_install_into_the_project_environment(tmp_path):
    folder = project(tmp_path, {
        "pyproject.toml": ("[project]\nname = 'x'\nversion = '0'\ndependencies = ['pyyaml']\n"
                           "[project.optional-dependencies]\ntrain = ['packaging']\n"),
        "ci/requirements.txt": "six\n",
    })
    proc, _ = setup("project", folder, tmp_path, SETUP_REQUIREMENTS="pyproject.toml[train] ci/requirements.txt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert installed(tmp_path, "yaml") and installed(tmp_path, "packaging") and installed(tmp_path, "six")


def test_a_conda_environment_file_installs_its_python_packages_for_the_python_it_pins(tmp_path):
    folder = project(tmp_path, {
        "environment.yml": ("name: churn\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pyyaml>=6\n"
                            "  - cudatoolkit=11.8\n  - pip\n  - pip:\n    - -r requirements-pip.txt\n"),
        "requirements-pip.txt": "six\n",
    })
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert values["python-version"] == "3.11" and values["requirements"] == f"{folder}/environment.yml"
    proc, _ = setup("project", folder, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left out, not Python packages: cudatoolkit=11.8" in proc.stderr
    assert installed(tmp_path, "yaml") and installed(tmp_path, "six")  # a conda package, and a file its pip entries include
    (folder / "environment.yml").write_text("dependencies:\n  - python=3.10\n")
    assert setup("plan", folder, tmp_path)[1]["python-version"] == "3.10"


def test_a_uv_lock_is_installed_with_uv_sync(tmp_path):
    folder = project(tmp_path, {"pyproject.toml": "[project]\nname = 'x'\nversion = '0'\ndependencies = ['pyyaml']\n"
                                                  "[tool.uv]\npackage = false\n"})
    subprocess.run(["uv", "lock", "--quiet", "--project", str(folder)], check=True)
    proc, _ = setup("project", folder, tmp_path, SETUP_REQUIREMENTS="uv.lock")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert installed(tmp_path, "yaml")


def test_a_missing_requirements_file_is_named(tmp_path):
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n"})
    proc, _ = setup("project", folder, tmp_path, SETUP_REQUIREMENTS="nope/requirements.txt")
    assert proc.returncode == 2 and "nope/requirements.txt does not exist" in proc.stderr


def test_the_projects_install_runs_without_the_runners_tokens(tmp_path):
    """A requirements entry that builds a local package runs its build code: it sees no token."""
    probe = tmp_path / "probe.txt"
    folder = project(tmp_path, {
        "requirements.txt": f"{tmp_path}/project/pkg\n",
        "pkg/setup.py": (
            "import os\nfrom setuptools import setup\n"
            f"open({str(probe)!r}, 'w').write(' '.join(sorted(k for k in os.environ if 'TOKEN' in k or k.startswith('ACTIONS_'))))\n"
            "setup(name='pkg', version='0')\n"
        ),
    })
    proc, _ = setup("project", folder, tmp_path, ACTIONS_ID_TOKEN_REQUEST_TOKEN="oidc", ACTIONS_ID_TOKEN_REQUEST_URL="u",
                    ACTIONS_RUNTIME_TOKEN="rt", GITHUB_TOKEN="gh", UV_NO_CACHE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert probe.read_text() == ""


def test_install_builds_both_environments_and_runs_lockstep_from_its_source(tmp_path):
    """Nothing is built (a .pth file points at the action's scripts/), no bytecode is compiled at
    install time, and the `lockstep` and `dvc` commands write it on first import even where
    PYTHONDONTWRITEBYTECODE is set."""
    folder = project(tmp_path, {"requirements.txt": "pyyaml\n"})
    proc, values = setup("install", folder, tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "runner" / "lockstep"
    assert values["python-path"] == str(root / "project" / "bin" / "python")
    assert installed(tmp_path, "yaml")
    site = next((root / "tool" / "lib").glob("python3*/site-packages"))
    assert [p.name for p in site.glob("lockstep*")] == ["lockstep-source.pth"] and (site / "lockstep-source.pth").read_text().strip() == str(ROOT / "scripts")
    version = subprocess.run([str(root / "bin" / "lockstep"), "--version"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert version.stdout.split()[1] == values["lockstep-version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dvc = subprocess.run([str(root / "bin" / "dvc"), "version"], capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert dvc.returncode == 0, dvc.stderr
    pinned = next(line.split("==")[1].split()[0] for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("dvc=="))
    assert f"DVC version: {pinned}" in dvc.stdout  # lockstep's dependencies at the versions constraints.txt pins
    assert list((site / "dvc" / "__pycache__").glob("__init__.*.pyc"))  # imported: written
    assert not list((site / "botocore").glob("**/*.pyc"))  # not imported: not compiled
    # without project-in-background the step ends with MLflow's client installed too
    assert (root / "mlflow.status").read_text().strip() == "0" and list(site.glob("mlflow_skinny-*.dist-info"))
    # and without Hydra, which DVC requires and imports only to compose params.yaml (lockstep/toolenv.py)
    assert not [p.name for p in site.glob("*.dist-info") if p.name.startswith(("hydra_core-", "omegaconf-", "antlr4"))]


HYDRA_COMPOSE = r'''
import sys
from pathlib import Path
from lockstep import dvcrepo
root = Path(sys.argv[1])
print(dvcrepo.compose(root, dvcrepo.hydra_of(root, {"enabled": True}), ["train.steps=7"]))
'''


@pytest.mark.integration  # lockstep's environment with DVC's Google Cloud Storage extra and Hydra: about 10 s
def test_hydra_is_installed_for_a_project_whose_dvc_config_uses_it_and_only_then(tmp_path):
    """DVC requires Hydra, whose ANTLR runtime is built from source: a project whose .dvc/config
    has no [hydra] section gets lockstep's environment without it, even where a remote's extra is
    resolved (as DVC's own requirements would pull it back), and composing then names the fix."""
    config = "[core]\n    remote = it\n['remote \"it\"']\n    url = gs://acme-ml/dvc\n"
    files = {"requirements.txt": "", "dvc.yaml": "stages: {}\n", "conf/config.yaml": "train:\n  steps: 3\n"}
    used = project(tmp_path / "used", {**files, ".dvc/config": config + "[hydra]\n    enabled = true\n"})
    proc, _ = setup("install", used, tmp_path / "used")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing Hydra for the project's DVC config ([hydra])" in proc.stdout and "installing dvc[gs]" in proc.stdout
    python = tmp_path / "used" / "runner" / "lockstep" / "tool" / "bin" / "python"
    composed = subprocess.run([str(python), "-c", HYDRA_COMPOSE, str(used)], capture_output=True, text=True, cwd=tmp_path)
    assert composed.returncode == 0, composed.stderr[-3000:]
    assert composed.stdout.strip() == "{'train': {'steps': 7}}"

    unused = project(tmp_path / "unused", {**files, ".dvc/config": config})
    proc, _ = setup("install", unused, tmp_path / "unused")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing Hydra" not in proc.stdout and "installing dvc[gs]" in proc.stdout
    python = tmp_path / "unused" / "runner" / "lockstep" / "tool" / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import hydra"], capture_output=True).returncode != 0
    assert subprocess.run([str(python), "-c", "import gcsfs, dvc_gs"], capture_output=True).returncode == 0
    composed = subprocess.run([str(python), "-c", HYDRA_COMPOSE, str(unused)], capture_output=True, text=True, cwd=tmp_path)
    assert composed.returncode != 0 and "InputError" in composed.stderr
    assert "Hydra is not installed in lockstep's environment" in composed.stderr and "[hydra] section" in composed.stderr


@pytest.mark.integration  # two real installs and a package build: about 15 s
def test_in_the_background_the_project_installs_after_the_step_and_lockstep_waits_for_it(tmp_path):
    env_file = tmp_path / "github-env.txt"
    folder = project(tmp_path, {  # a package that builds for longer than lockstep's environment installs
        "requirements.txt": f"{tmp_path}/project/pkg\n",
        "pkg/setup.py": "import time\nfrom setuptools import setup\ntime.sleep(4)\nsetup(name='slowpkg', version='0', py_modules=['slowpkg'])\n",
        "pkg/slowpkg.py": "",
    })
    proc, _ = setup("install", folder, tmp_path, end_group=True, SETUP_BACKGROUND="true", GITHUB_ENV=str(env_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = tmp_path / "runner" / "lockstep" / "project.status"
    assert f"LOCKSTEP_PROJECT_ENV_STATUS={status}" in env_file.read_text().splitlines()
    assert "LOCKSTEP_PROJECT_REQUIREMENTS=requirements.txt " in env_file.read_text().splitlines()  # for the Packages check
    from lockstep import projectenv

    projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(status)}, timeout=300)
    assert status.read_text().strip() == "0" and installed(tmp_path, "slowpkg")
    # MLflow's client goes on installing into lockstep's environment after the step too (toolenv.py)
    client = tmp_path / "runner" / "lockstep" / "mlflow.status"
    assert f"LOCKSTEP_MLFLOW_CLIENT_STATUS={client}" in env_file.read_text().splitlines()
    projectenv.wait_for_mlflow_client({"LOCKSTEP_MLFLOW_CLIENT_STATUS": str(client)}, timeout=300)
    tool = tmp_path / "runner" / "lockstep" / "tool" / "bin" / "python"
    assert subprocess.run([str(tool), "-c", "import mlflow.tracking, dvc.repo"], capture_output=True).returncode == 0


@pytest.mark.integration  # two real installs: about 10 s
def test_the_project_install_begins_before_the_cache_restore_and_links_what_it_restored(tmp_path):
    """`begin` (the key step) starts the project's install; the cache step then restores the
    bytecode; `install` installs lockstep's environment without starting the project's again, and
    the project's install links the restored bytecode only once `install` says the cache is in."""
    from lockstep import bytecode, projectenv

    earlier = tmp_path / "earlier-job"  # an environment a previous job imported yaml in
    subprocess.run(["uv", "venv", "--quiet", str(earlier)], check=True)
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(earlier / "bin" / "python"), "pyyaml"], check=True)
    subprocess.run([str(earlier / "bin" / "python"), "-c", "import yaml"], check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    folder = project(tmp_path, {"requirements.txt": "pyyaml\n"})
    proc, values = setup("begin", folder, tmp_path, end_group=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # another job's archive is restored when this key has none, if it is for the same Python
    assert values["key"].startswith(values["restore-prefix"]) and values["restore-prefix"].endswith(f"-{sys.implementation.cache_tag}-")
    root = tmp_path / "runner" / "lockstep"
    begun = (root / "project.pid").read_text()
    restored = Path(values["dir"])  # what actions/cache restores, after `begin`
    restored.mkdir(parents=True)
    assert bytecode.keep(restored / "project.zip", earlier) > 0
    env_file = tmp_path / "github-env.txt"
    proc, _ = setup("install", folder, tmp_path, end_group=True, SETUP_BACKGROUND="true", GITHUB_ENV=str(env_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "project.pid").read_text() == begun  # not started twice
    projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(root / "project.status")}, timeout=300)
    assert installed(tmp_path, "yaml")
    assert "bytecode file(s) of project restored from the cache" in (root / "project-install.log").read_text()
    assert list((root / "project").glob("lib/python3*/site-packages/yaml/__pycache__/__init__.*.pyc"))


def background_ended(root: Path, timeout: float = 120) -> None:
    """Wait until the project's background install (and what it does after) has exited: gone, or
    a zombie (an in-process validation earlier in this worker made it a subreaper, which does not
    reap the orphans it adopts)."""
    stat = Path(f"/proc/{int((root / 'project.pid').read_text())}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError("the project's background install did not end")


@pytest.mark.parametrize("restored", [False, True])
def test_after_the_project_install_what_the_stages_import_is_compiled_unless_the_cache_had_bytecode(tmp_path, restored):
    """With no bytecode restored for the project's environment, the background install goes on,
    once project.status is written, to compile what the scripts dvc.yaml names import
    (lockstep/precompile.py); with an archive restored (this key's or an older one) it leaves that
    to the archive."""
    from lockstep import bytecode

    folder = project(tmp_path, {"requirements.txt": "pyyaml\n", "dvc.yaml": "stages:\n  evaluate:\n    cmd: python src/evaluate.py\n",
                                "src/evaluate.py": "import yaml\n"})
    if restored:  # what actions/cache put back: an archive (here of nothing)
        archive = tmp_path / "runner" / "lockstep-bytecode" / "project.zip"
        archive.parent.mkdir(parents=True)
        (tmp_path / "empty").mkdir()
        bytecode.keep(archive, tmp_path / "empty")
    proc, _ = setup("install", folder, tmp_path, end_group=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "runner" / "lockstep"
    assert (root / "project.status").read_text().strip() == "0"
    background_ended(root)
    compiled = list((root / "project").glob("lib/python3*/site-packages/yaml/__pycache__/*.pyc"))
    if restored:
        assert not (root / "precompile.log").exists() and not compiled
    else:
        assert "precompiled" in (root / "precompile.log").read_text() and compiled
        assert not list(folder.rglob("__pycache__"))


def test_the_project_install_outlives_the_step_that_began_it_however_late_it_detaches(tmp_path):
    """A busy runner may schedule the install's process after the `begin` step has ended, and the
    end of a step may end its process group: `begin` returns only once the install is in its own
    session. Here `setsid` is slow to start (a shim on PATH), and the step's group is killed as
    soon as the step ends."""
    from lockstep import projectenv

    real = subprocess.run(["bash", "-c", "command -v setsid"], capture_output=True, text=True).stdout.strip()
    assert real, "this machine has no setsid"
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "setsid").write_text(f"#!/bin/sh\nsleep 0.5\nexec {real} \"$@\"\n")
    (shims / "setsid").chmod(0o755)
    folder = project(tmp_path, {"requirements.txt": ""})
    proc, _ = setup("begin", folder, tmp_path, end_group=True, PATH=f"{shims}:{os.environ['PATH']}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "runner" / "lockstep"
    (root / "bytecode.ready").touch()  # what `install` says after the cache step
    projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(root / "project.status")}, timeout=120)
    assert (root / "project.status").read_text().strip() == "0"


def test_lockstep_s_own_install_failing_fails_the_step_with_its_log(tmp_path):
    folder = project(tmp_path, {"requirements.txt": ""})
    proc, values = setup("install", folder, tmp_path, SETUP_PYTHON=str(tmp_path / "no-such-python"))
    assert proc.returncode != 0
    assert "lockstep's own environment did not install" in proc.stderr and "no-such-python" in proc.stderr
    assert "lockstep-version" not in values


def test_a_failed_project_install_fails_the_install(tmp_path):
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n"})
    proc, _ = setup("install", folder, tmp_path, SETUP_REQUIREMENTS="nope/requirements.txt")
    assert proc.returncode == 2 and "nope/requirements.txt does not exist" in proc.stderr
    assert "lockstep-version" not in (tmp_path / "outputs.txt").read_text()


GOOGLE_LOGIN = r'''
import base64, json, sys
from pathlib import Path
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
import pydrive2.fs  # DVC's Google Drive filesystem: imports with the pyOpenSSL the setup chose
from lockstep import dvcrepo

dvcrepo.open_repo(sys.argv[1])  # a project whose remote is on Google Drive: lockstep settles its remotes
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
info = {"type": "service_account", "client_email": "ci@project.iam.gserviceaccount.com", "client_id": "1",
        "private_key_id": "k1", "private_key": pem.decode(), "token_uri": "https://oauth2.googleapis.com/token"}
from oauth2client.service_account import ServiceAccountCredentials
credentials = ServiceAccountCredentials.from_json_keyfile_dict(info, scopes=["https://www.googleapis.com/auth/drive"])
assertion = credentials._generate_assertion()  # what the token request to Google carries
head, claims, signature = (assertion.decode() if isinstance(assertion, bytes) else assertion).split(".")
pad = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
key.public_key().verify(pad(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
print(json.loads(pad(head))["alg"], json.loads(pad(claims))["iss"])
'''


def tool_for_remote(tmp_path: Path, extra: str, remote: str) -> tuple[Path, Path]:
    """A DVC project in git whose only remote is `remote` (a .dvc/config section body), and
    lockstep's environment for it installed by setup.sh as the setup action does (with the DVC
    `extra` it needs): the project folder and the environment's python."""
    folder = project(tmp_path, {"requirements.txt": "", "dvc.yaml": "stages: {}\n",
                                ".dvc/config": f"[core]\n    remote = it\n['remote \"it\"']\n{remote}"})
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    proc, _ = setup("install", folder, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"installing dvc[{extra}]" in proc.stdout
    return folder, tmp_path / "runner" / "lockstep" / "tool" / "bin" / "python"


@pytest.mark.integration  # lockstep's environment with DVC's Google Drive extra, from PyPI: about 10 s
def test_a_google_drive_remote_gets_a_client_whose_service_account_login_signs(tmp_path):
    """The service-account login of DVC's Google Drive client signs its token request with
    pyOpenSSL's crypto.sign, which the pyOpenSSL today's DVC allows no longer has: lockstep's
    environment installs the extra so that it imports, and signs with oauth2client's own RSA signer
    (the signature is checked here with the key's public half; Google's endpoint is not reachable)."""
    folder, python = tool_for_remote(tmp_path, "gdrive", "    url = gdrive://0AIac4JZqHhKmUk9PDA/dvcstore\n"
                                                         "    gdrive_use_service_account = true\n")
    login = subprocess.run([str(python), "-c", GOOGLE_LOGIN, str(folder)], capture_output=True, text=True, cwd=tmp_path)
    assert login.returncode == 0, login.stderr[-3000:]
    assert login.stdout.split() == ["RS256", "ci@project.iam.gserviceaccount.com"]


GCS_LOGIN = r'''
import json, os, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lockstep import dvcrepo

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
os.environ["GOOGLE_CREDENTIALS"] = json.dumps({
    "type": "service_account", "project_id": "acme-ml", "client_email": "ci@acme-ml.iam.gserviceaccount.com", "client_id": "1",
    "private_key_id": "k1", "private_key": pem.decode(), "token_uri": "https://oauth2.googleapis.com/token"})
repo = dvcrepo.open_repo(sys.argv[1])  # lockstep settles the remotes: the credentials go to DVC's GCS client
client = repo.cloud.get_remote().fs.fs  # gcsfs, as DVC builds it for the remote check, the pull and the push
credentials = client.credentials.credentials
print(type(credentials).__module__, credentials.service_account_email)
'''


@pytest.mark.integration  # lockstep's environment with DVC's Google Cloud Storage extra, from PyPI: about 10 s
def test_a_gcs_remote_gets_the_service_account_key_from_the_secret_in_memory(tmp_path):
    """On a GitHub-hosted runner there is no key file, and a reusable workflow cannot add an auth
    step: GOOGLE_CREDENTIALS (the key's JSON) reaches DVC's GCS client without being written to
    a file. Without it, gcsfs falls back to anonymous access."""
    folder, python = tool_for_remote(tmp_path, "gs", "    url = gs://acme-ml/dvc\n")
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    login = subprocess.run([str(python), "-c", GCS_LOGIN, str(folder)], capture_output=True, text=True, cwd=tmp_path,
                           env={k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))})
    assert login.returncode == 0, login.stderr[-3000:]
    assert login.stdout.split() == ["google.oauth2.service_account", "ci@acme-ml.iam.gserviceaccount.com"]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in before and "__pycache__" not in p.parts]
    assert not [p for p in written if b"PRIVATE KEY" in p.read_bytes()]  # the key is in no file
    # a developer's key file named in .dvc/config, which the runner does not have: the secret is used
    config = folder / ".dvc" / "config"
    config.write_text(config.read_text() + "    credentialpath = /home/developer/keys/acme-ml.json\n")
    login = subprocess.run([str(python), "-c", GCS_LOGIN, str(folder)], capture_output=True, text=True, cwd=tmp_path,
                           env={k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))})
    assert login.returncode == 0, login.stderr[-3000:]
    assert login.stdout.split()[1] == "ci@acme-ml.iam.gserviceaccount.com"


@pytest.mark.parametrize(("spec", "chosen"), [
    (">=3.12", "3.12"), (">=3.8", "3.11"), (">=3.8,<3.11", "3.10"), ("<3.11,>=3.9", "3.10"), (">=3.11.4", "3.11"),
    (">3.11", "3.12"), ("<=3.10", "3.10"), (">=3.9,!=3.11.*", "3.12"), ("==3.13.*", "3.13"), ("~=3.12", "3.12"),
    ("~=3.10.2", "3.10"), ("^3.12", "3.12"), ("^3.10", "3.11"), ("~3.10", "3.10"), ("3.12", "3.12"), ("*", "3.11"),
    (">=3.15", None), ("^3.9 || ^4.0", None),
])
def test_the_python_a_specifier_gets_is_the_default_when_accepted_else_the_first_it_accepts(spec, chosen):
    from lockstep import pyversion

    assert pyversion.choose(spec) == chosen


@contextlib.contextmanager
def sftp_server(root: Path):
    """A real SSH server with SFTP (asyncssh, which DVC's git layer already brings) on 127.0.0.1,
    serving `root`, accepting one generated client key: (port, the client's private key, the
    server's known_hosts line)."""
    import asyncio
    import threading

    import asyncssh

    host_key, client_key = asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key], allow_scp=False,
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
        sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=str(root).encode())))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, client_key.export_private_key().decode(), f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(server.wait_closed())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # its self-pipe sockets too: left open, they warn in whichever test collects them


SSH_PUSH = r'''
import sys
from pathlib import Path
from lockstep import dvcrepo

Path("data.txt").write_text("rows\n")
repo = dvcrepo.open_repo(".")  # lockstep settles the remotes: the key and the host keys go to DVC's SSH client
repo.add("data.txt")
print("pushed", repo.push())
check = dvcrepo.verify_remote(dvcrepo.open_repo("."))  # lockstep's own remote check, over SFTP
print("missing", len(check.missing))
'''


@pytest.mark.integration  # lockstep's environment with DVC's SSH extra, from PyPI, and a real SSH server: about 10 s
def test_an_ssh_remote_gets_its_key_and_host_keys_from_secrets_in_memory(tmp_path):
    """On a runner there is no key file and no known_hosts entry for the team's server:
    SSH_PRIVATE_KEY and SSH_KNOWN_HOSTS reach DVC's SSH client without a file, and DVC pushes,
    and lockstep checks the remote, over SFTP to a real server."""
    store = tmp_path / "store"
    store.mkdir()
    with sftp_server(store) as (port, key, known_hosts):
        folder, python = tool_for_remote(tmp_path, "ssh", f"    url = ssh://127.0.0.1:{port}/dvc\n    user = ci\n")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SSH_")}, "HOME": str(tmp_path / "home")}

        def push(**secrets: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(python), "-c", SSH_PUSH], cwd=folder, capture_output=True, text=True, env={**env, **secrets}, timeout=120)

        pushed = push(SSH_PRIVATE_KEY=key, SSH_KNOWN_HOSTS=known_hosts)
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        assert [line for line in pushed.stdout.splitlines() if line.startswith(("pushed", "missing"))] == ["pushed 1", "missing 0"]
        assert [p.relative_to(store).parts[:3] for p in store.rglob("*") if p.is_file()] == [("dvc", "files", "md5")]
        # another server's host key for that address: refused before any credential is sent
        impostor = known_hosts.rsplit(" ", 1)[0] + " AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        refused = push(SSH_PRIVATE_KEY=key, SSH_KNOWN_HOSTS=impostor)
        assert refused.returncode != 0 and "Host key is not trusted" in refused.stderr
        no_key = push(SSH_KNOWN_HOSTS=known_hosts)
        assert no_key.returncode != 0 and "Permission denied" in no_key.stderr
        unreadable = push(SSH_PRIVATE_KEY="ssh-ed25519 AAAA-not-a-private-key", SSH_KNOWN_HOSTS=known_hosts)
        assert "SSH_PRIVATE_KEY is not a private key lockstep can read without a passphrase" in unreadable.stderr
        assert "not-a-private-key" not in unreadable.stderr  # a secret's value is never echoed
        # a developer's key file named in .dvc/config, which the runner does not have: the secret is used
        config = folder / ".dvc" / "config"
        config.write_text(config.read_text() + "    keyfile = ~/.ssh/developer_ed25519\n")
        again = push(SSH_PRIVATE_KEY=key, SSH_KNOWN_HOSTS=known_hosts)
        assert again.returncode == 0 and "missing 0" in again.stdout, again.stderr[-3000:]


def test_packages_installed_from_the_checkout_are_found_from_their_install_records(tmp_path):
    """`-e .` (editable) and `./pkg` (built) name folders of the checkout; a package from an index
    or from another folder does not. Read from the records, without running the environment."""
    import json

    from lockstep import projectenv

    checkout, venv = tmp_path / "checkout", tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")  # never run
    (venv / "bin" / "python").chmod(0o755)
    site = venv / "lib" / "python3.11" / "site-packages"
    records = {
        "churnkit-0.0.1": {"url": (checkout / "ml").as_uri(), "dir_info": {"editable": True}},
        "csv_speedups-1.0": {"url": (checkout / "ml" / "csv speedups").as_uri(), "dir_info": {}},
        "elsewhere-2.0": {"url": (tmp_path / "other").as_uri(), "dir_info": {"editable": True}},
        "requests-2.32.3": {"url": "https://files.pythonhosted.org/requests-2.32.3-py3-none-any.whl", "archive_info": {}},
    }
    for name, record in records.items():
        (site / f"{name}.dist-info").mkdir(parents=True)
        (site / f"{name}.dist-info" / "direct_url.json").write_text(json.dumps(record))
    (site / "pyyaml-6.0.dist-info").mkdir()  # from an index: no record at all
    environ = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin"}
    assert projectenv.installed_from_checkout(environ, checkout) == ["churnkit", "csv_speedups"]
    assert projectenv.installed_from_checkout({"PATH": "/usr/bin"}, checkout) == []  # no environment of its own


@contextlib.contextmanager
def package_index(root: Path, name: str, version: str):
    """A PEP 503 index on loopback that carries one old copy of a package PyPI has (as PyTorch's
    index carries old copies of common packages): a wheel made here, listed under /simple/NAME/."""
    import http.server
    import threading
    import zipfile

    wheel = f"{name}-{version}-py3-none-any.whl"
    (root / "simple" / name).mkdir(parents=True)
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(root / "simple" / name / wheel, "w") as archive:
        archive.writestr(f"{name}.py", "OLD_COPY = True\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    (root / "simple" / name / "index.html").write_text(f'<html><body><a href="{wheel}">{wheel}</a></body></html>\n')
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_requirements_with_an_extra_index_install_as_pip_installs_them(tmp_path):
    """`--extra-index-url` in requirements.txt (PyTorch's, for a CPU build): pip takes the best
    version any index has; uv's own default takes a package only from the first index that has it,
    where an old copy fails the pin. The project installs as the developer's pip installed it."""
    with package_index(tmp_path / "index", "six", "1.10.0") as url:
        folder = project(tmp_path, {"requirements.txt": f"--extra-index-url {url}\nsix==1.17.0\n"})
        proc, _ = setup("project", folder, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    python = tmp_path / "runner" / "lockstep" / "project" / "bin" / "python"
    version = subprocess.run([str(python), "-c", "import six; print(six.__version__)"], capture_output=True, text=True)
    assert version.stdout.strip() == "1.17.0"


@pytest.mark.parametrize(("files", "named", "fix"), [
    ({"requirements/base.txt": "pyyaml\n", "requirements/dev.txt": "-r base.txt\npytest\n"},
     "requirements/base.txt, requirements/dev.txt", "`requirements: requirements/base.txt`"),
    ({"requirements-train.txt": "pyyaml\n"}, "requirements-train.txt", "`requirements: requirements-train.txt`"),
], ids=["requirements-folder", "requirements-dash"])
def test_requirements_that_are_no_default_fail_the_setup_with_the_input_to_set(tmp_path, files, named, fix):
    """A project whose packages are listed where lockstep does not look by default fails before
    anything is installed, naming the files, rather than installing nothing for its stages."""
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n", **files})
    for command in ("plan", "project"):
        proc, _ = setup(command, folder, tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"but {named} look like the project's requirements" in proc.stderr and fix in proc.stderr, proc.stderr
    assert not installed(tmp_path, "yaml")
    (folder / "requirements.txt").write_text("")  # a default file, even an empty one, is the developer's choice
    assert setup("plan", folder, tmp_path)[0].returncode == 0


def test_a_requirements_file_with_hashes_installs_only_what_it_pins_with_a_hash(tmp_path):
    """pip's rule: one `--hash` puts the whole file in hash-checking mode, so a requirement the file
    left without a hash (a dependency pip-compile did not list) is refused, not installed unchecked."""
    import hashlib

    with package_index(tmp_path / "index", "six", "1.10.0") as url:
        wheel = next((tmp_path / "index" / "simple" / "six").glob("*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        pinned = f"--index-url {url}\nsix==1.10.0 --hash=sha256:{digest}\n"
        folder = project(tmp_path, {"requirements.txt": pinned + "attrs\n"})
        proc, _ = setup("project", folder, tmp_path)
        assert proc.returncode != 0 and "attrs" in proc.stderr, proc.stdout + proc.stderr
        assert not installed(tmp_path, "six")
        (folder / "requirements.txt").write_text(pinned)
        proc, _ = setup("project", folder, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert installed(tmp_path, "six")


def test_a_python_version_file_with_comments_or_a_virtualenv_name_and_a_python_below_3_10(tmp_path):
    folder = project(tmp_path, {"dvc.yaml": "stages: {}\n", ".python-version": "# pinned by pyenv\n3.12\n"})
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0 and values["python-version"] == "3.12", proc.stderr
    (folder / ".python-version").write_text("churn-env\n")  # pyenv-virtualenv's name: no version
    proc, values = setup("plan", folder, tmp_path)
    assert proc.returncode == 0 and values["python-version"] == "3.11", proc.stderr
    assert "names 'churn-env', which is no Python version" in proc.stderr
    (folder / ".python-version").write_text("# the team's\n3.9.18\n")
    proc, _ = setup("plan", folder, tmp_path)
    assert proc.returncode == 2 and f"the project asks for Python 3.9.18 (from {folder}/.python-version:2: `3.9.18`)" in proc.stderr, proc.stderr
    assert "lockstep needs Python 3.10 or newer" in proc.stderr and "set the `python-version` input to 3.10 or newer" in proc.stderr


POETRY_PROJECT = """[tool.poetry]
name = "churn"
version = "0.1.0"
description = "a Poetry project in non-package mode: nothing to build"
authors = ["A Developer <dev@example.com>"]
package-mode = false

[tool.poetry.dependencies]
python = "^3.10"
six = "^1.15"

[tool.poetry.group.dev.dependencies]
pytest = "^8"

[tool.poetry.group.train.dependencies]
attrs = ">=22"
"""
POETRY_LOCK = """[[package]]
name = "six"
version = "1.16.0"
description = "Python 2 and 3 compatibility utilities"
optional = false
python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"
files = []

[metadata]
lock-version = "2.0"
python-versions = "^3.10"
content-hash = "0"
"""


def test_a_poetry_project_installs_its_main_dependencies_at_the_versions_its_lock_pins(tmp_path):
    """Poetry's tables, read by lockstep (a project in non-package mode cannot be built, which is how
    uv reads a pyproject.toml it does not understand), and the lock's versions as constraints: the
    developer's `poetry install`, not the newest release within `^1.15`."""
    folder = project(tmp_path, {"pyproject.toml": POETRY_PROJECT, "poetry.lock": POETRY_LOCK, "dvc.yaml": "stages: {}\n"})
    proc, values = setup("plan", folder, tmp_path)
    assert values["requirements"] == f"{folder}/pyproject.toml", proc.stderr
    proc, _ = setup("project", folder, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "with the versions" in proc.stdout and "poetry.lock pins (1 package(s))" in proc.stdout
    python = tmp_path / "runner" / "lockstep" / "project" / "bin" / "python"
    version = subprocess.run([str(python), "-c", "import six; print(six.__version__)"], capture_output=True, text=True)
    assert version.stdout.strip() == "1.16.0", version.stdout + version.stderr
    assert not installed(tmp_path, "pytest") and not installed(tmp_path, "attrs")  # the dev group, an unnamed group
    proc, _ = setup("project", folder, tmp_path, SETUP_REQUIREMENTS="pyproject.toml[train]")
    assert proc.returncode == 0 and installed(tmp_path, "attrs"), proc.stdout + proc.stderr
    proc, _ = setup("project", folder, tmp_path, SETUP_REQUIREMENTS="pyproject.toml[gpu]")
    assert proc.returncode == 2 and "Poetry declares no group or extra named 'gpu'" in proc.stderr, proc.stderr


def test_a_dependency_group_named_in_the_requirements_input_is_installed(tmp_path):
    folder = project(tmp_path, {"pyproject.toml": "[project]\nname = 'x'\nversion = '0'\ndependencies = []\n"
                                                  "[dependency-groups]\ntrain = ['six']\ndev = ['attrs']\n"})
    proc, _ = setup("project", folder, tmp_path, SETUP_REQUIREMENTS="pyproject.toml[train]")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert installed(tmp_path, "six") and not installed(tmp_path, "attrs")


def test_a_pipenv_lock_installs_its_default_packages_at_their_versions_with_their_hashes(tmp_path):
    """pipenv's lock, as `pipenv install --deploy` installs it: the default packages at the locked
    versions, their hashes checked, the develop ones left out, for the Python it asks for."""
    import hashlib
    import json

    with package_index(tmp_path / "index", "six", "1.10.0") as url:
        wheel = next((tmp_path / "index" / "simple" / "six").glob("*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lock = {"_meta": {"requires": {"python_version": "3.12"}, "sources": [{"name": "local", "url": url, "verify_ssl": False}]},
                "default": {"six": {"hashes": [f"sha256:{digest}"], "index": "local", "version": "==1.10.0"}},
                "develop": {"attrs": {"hashes": ["sha256:0"], "version": "==25.1.0"}}}
        folder = project(tmp_path, {"Pipfile": '[packages]\nsix = "*"\n', "Pipfile.lock": json.dumps(lock), "dvc.yaml": "stages: {}\n"})
        proc, values = setup("plan", folder, tmp_path)
        assert values["requirements"] == f"{folder}/Pipfile.lock" and values["python-version"] == "3.12", proc.stderr
        proc, _ = setup("project", folder, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        python = tmp_path / "runner" / "lockstep" / "project" / "bin" / "python"
        version = subprocess.run([str(python), "-c", "import six; print(six.OLD_COPY)"], capture_output=True, text=True)
        assert version.stdout.strip() == "True" and not installed(tmp_path, "attrs"), version.stderr  # the index's 1.10.0
        lock["default"]["six"]["hashes"] = ["sha256:" + "0" * 64]  # a lock whose hash the wheel does not have
        (folder / "Pipfile.lock").write_text(json.dumps(lock))
        proc, _ = setup("project", folder, tmp_path)
        assert proc.returncode != 0 and "six" in proc.stderr, proc.stdout + proc.stderr


def test_a_working_directory_relative_to_the_workspace_installs_its_requirements(tmp_path):
    """The action's `working-directory` is relative to the workspace (the step's folder), as
    `example-project` is: the file is read, and installed, from there."""
    folder = project(tmp_path, {"requirements.txt": "six\n"})
    proc, _ = setup("project", folder, tmp_path, SETUP_WORKING_DIRECTORY=folder.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert installed(tmp_path, "six")

