"""lockstep's environment in two parts (lockstep/toolenv.py): what the checks need first, and what
only MLflow's client needs, installed while the checks run; lockstep waits for the second part
before it imports MLflow, and before the project's code runs (the guard's snapshot)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lockstep import guard, projectenv, toolenv
from lockstep.errors import EXIT_MLFLOW, MlflowError

from conftest import ROOT

CONSTRAINTS = (ROOT / "constraints.txt").read_text()


def names(lines: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in lines}


def test_the_later_part_is_what_only_mlflow_s_client_needs_and_hydra_s_what_only_hydra_needs():
    first, later, hydra = toolenv.split(CONSTRAINTS)
    assert "mlflow-skinny" in names(later)
    assert {"dvc", "dvc-s3", "pyyaml", "jsonschema", "requests"} <= names(first)
    assert names(hydra) == {"hydra-core", "omegaconf", "antlr4-python3-runtime"}  # PyYAML and packaging: first
    pins = [line for line in CONSTRAINTS.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    assert sorted(first + later + hydra) == sorted(pins)  # every pin, in one part only


def test_nothing_in_the_first_part_requires_a_package_of_the_later_one():
    """Read from the installed packages' own metadata, not from constraints.txt's annotations that
    the split reads: DVC's checks would fail to import in the first part alone otherwise."""
    first, later, hydra = toolenv.split(CONSTRAINTS)
    later_names = names(later) | names(hydra)
    environment = default_environment()
    for name in sorted(names(first)):
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # pinned for another platform or Python (pywin32, ...)
        for text in requires:
            requirement = Requirement(text)
            extras = {"s3"} if name == "dvc" else {""}  # lockstep asks for dvc[s3]
            if requirement.marker and not any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras):
                continue
            if name == "dvc" and canonicalize_name(requirement.name) in names(hydra):
                continue  # required, and imported only to compose params.yaml: the next test
            assert canonicalize_name(requirement.name) not in later_names, f"{name} requires {requirement.name}, in a later part"


def test_dvc_imports_hydra_only_where_it_composes_params():
    """Hydra's part is installed only for projects whose DVC config uses it: DVC, its plugins and
    lockstep must import Hydra and OmegaConf nowhere else, or a project without it would fail."""
    modules = {"hydra", "omegaconf", "antlr4"}
    sources = {"lockstep": sorted((ROOT / "scripts" / "lockstep").rglob("*.py"))}
    for distribution in ("dvc", "dvc-data", "dvc-objects", "dvc-s3", "dvc-http", "dvc-task", "dvc-render", "dvc-studio-client",
                         "scmrepo", "gto"):
        installed = metadata.distribution(distribution)
        sources[distribution] = [Path(installed.locate_file(f)) for f in installed.files or [] if f.suffix == ".py"]
    found = []
    for paths in sources.values():
        for path in paths:
            for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
                words = line.split()
                if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in modules:
                    found.append(f"{'/'.join(path.parts[-3:])}:{number}: {line.strip()}")
    assert found and all(entry.startswith("dvc/utils/hydra.py:") for entry in found), found


def test_a_package_both_need_is_first_and_one_only_the_later_part_reaches_is_later():
    text = """\
anyio==4.0
    # via starlette
dvc==3.0
    # via lockstep (pyproject.toml)
mlflow-skinny==3.0
    # via lockstep (pyproject.toml)
requests==2.0
    # via
    #   dvc
    #   mlflow-skinny
starlette==1.0 ; python_full_version >= '3.11'
    # via mlflow-skinny
starlette==0.9 ; python_full_version < '3.11'
    # via mlflow-skinny
"""
    first, later, hydra = toolenv.split(text)
    assert first == ["dvc==3.0", "requests==2.0"] and hydra == []
    assert later == ["anyio==4.0", "mlflow-skinny==3.0", "starlette==1.0 ; python_full_version >= '3.11'",
                     "starlette==0.9 ; python_full_version < '3.11'"]


def test_hydra_s_part_is_what_only_hydra_reaches_and_a_package_mlflow_needs_too_is_installed_with_mlflow():
    text = """\
antlr4-python3-runtime==4.9.3
    # via
    #   hydra-core
    #   omegaconf
dvc==3.0
    # via lockstep (pyproject.toml)
hydra-core==1.3
    # via dvc
mlflow-skinny==3.0
    # via lockstep (pyproject.toml)
omegaconf==2.3
    # via
    #   dvc
    #   hydra-core
protobuf==5.0
    # via
    #   hydra-core
    #   mlflow-skinny
pyyaml==6.0
    # via
    #   dvc
    #   omegaconf
"""
    first, later, hydra = toolenv.split(text)
    assert first == ["dvc==3.0", "pyyaml==6.0"]
    assert hydra == ["antlr4-python3-runtime==4.9.3", "hydra-core==1.3", "omegaconf==2.3"]
    assert later == ["mlflow-skinny==3.0", "protobuf==5.0"]  # installed with --no-deps: it must be there


def test_a_file_without_annotations_is_not_split():
    assert toolenv.split("dvc==3.0\nmlflow-skinny==3.0\nhydra-core==1.0\n") == (["dvc==3.0", "mlflow-skinny==3.0", "hydra-core==1.0"], [], [])


def test_the_setup_runs_it_with_the_standard_library_only(tmp_path):
    """setup.sh runs the file with the job's Python before lockstep's environment exists."""
    script = ROOT / "scripts" / "lockstep" / "toolenv.py"
    proc = subprocess.run([sys.executable, "-I", "-S", str(script), "split", str(ROOT / "constraints.txt"),
                           str(tmp_path / "first.txt"), str(tmp_path / "later.txt"), str(tmp_path / "hydra.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    first, later, hydra = toolenv.split(CONSTRAINTS)
    assert (tmp_path / "first.txt").read_text().splitlines() == first
    assert (tmp_path / "later.txt").read_text().splitlines() == later
    assert (tmp_path / "hydra.txt").read_text().splitlines() == hydra


def _statuses(tmp_path, code: str | None, log: str = "") -> dict[str, str]:
    (tmp_path / "tool.pid").write_text("999999999\n")  # no such process: the install has ended
    (tmp_path / "mlflow-install.log").write_text(log)
    if code is not None:
        (tmp_path / "mlflow.status").write_text(f"{code}\n")
    projectenv._ready.discard(str(tmp_path / "mlflow.status"))
    return {"LOCKSTEP_MLFLOW_CLIENT_STATUS": str(tmp_path / "mlflow.status")}


def test_a_failed_install_of_mlflow_s_client_is_named_with_its_log(tmp_path):
    environ = _statuses(tmp_path, "2", "error: Failed to fetch: `https://pypi.org/simple/mlflow-skinny/`\n")
    with pytest.raises(MlflowError) as raised:
        projectenv.wait_for_mlflow_client(environ)
    assert raised.value.exit_code == EXIT_MLFLOW
    assert "did not install into lockstep's environment (exit 2)" in raised.value.message
    assert "Failed to fetch" in raised.value.message and "re-run the job" in raised.value.hint
    projectenv.wait_for_mlflow_client(environ, required=False)  # the guard only waits for its end


def test_an_install_that_stopped_without_a_status_is_named(tmp_path):
    environ = _statuses(tmp_path, None)
    with pytest.raises(MlflowError, match="stopped without finishing"):
        projectenv.wait_for_mlflow_client(environ)
    projectenv.wait_for_mlflow_client(environ, required=False)


def test_the_guard_takes_its_snapshot_only_once_the_install_has_ended(tmp_path, monkeypatch):
    """The project's code must not start while the installer still writes to lockstep's environment:
    the snapshot would miss those files, and the check after the code would call them tampering."""
    environ = _statuses(tmp_path, None)
    (tmp_path / "tool.pid").write_text(f"{os.getpid()}\n")  # still running: this process
    monkeypatch.setenv("LOCKSTEP_MLFLOW_CLIENT_STATUS", environ["LOCKSTEP_MLFLOW_CLIENT_STATUS"])
    ended: list[float] = []

    def finish() -> None:
        time.sleep(0.5)
        ended.append(time.monotonic())
        (tmp_path / "mlflow.status").write_text("0\n")

    watched = tmp_path / "watched"
    watched.mkdir()
    checker = guard.Guard([guard.Tree(watched)], {})
    thread = threading.Thread(target=finish)
    thread.start()
    checker.snapshot()
    taken = time.monotonic()
    thread.join()
    assert ended and taken >= ended[0]
