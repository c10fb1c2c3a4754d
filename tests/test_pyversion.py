"""Which Python a project asks for in the files other tools read it from (lockstep/pyversion.py):
each reader on a real file, and the order `find` reads them in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lockstep import pyversion

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "version", "line"), [
    ("python-3.10.12\n", "3.10.12", 1),
    ("python-3.12", "3.12", 1),  # Heroku also takes a minor release, and no newline
    ("\n  python-3.11.4  \n", "3.11.4", 2),
    ("pypy3.10-7.3\n", None, 0),
    ("3.12.1\n", None, 0),
], ids=["patch", "minor", "blank-first", "pypy", "bare"])
def test_runtime_txt_names_herokus_python(tmp_path, text, version, line):
    asked = pyversion.read_runtime_txt(write(tmp_path, "runtime.txt", text))
    if version is None:
        assert asked is None
        return
    assert asked is not None and (asked.version, asked.line, asked.pinned) == (version, line, True)
    assert asked.where == f"{tmp_path}/runtime.txt:{line}: `python-{version}`"


@pytest.mark.parametrize(("text", "version", "line"), [
    ("python 3.12.1\n", "3.12.1", 1),
    ("# asdf\nnodejs 20.11.0\npython 3.11.7 3.10.13 system\n", "3.11.7", 3),  # several listed: the first
    ("python system\n", None, 0),
    ("python miniconda3-4.7.12\n", None, 0),
    ("nodejs 20.11.0\n", None, 0),
    ("pythonx 3.12.1\n", None, 0),
], ids=["one", "several", "system", "miniconda", "none", "another-tool"])
def test_tool_versions_names_asdfs_first_python(tmp_path, text, version, line):
    asked = pyversion.read_tool_versions(write(tmp_path, ".tool-versions", text))
    assert (asked.version, asked.line) == (version, line) if asked else version is None


@pytest.mark.parametrize(("text", "version", "line"), [
    ("FROM python:3.12-slim\nRUN pip install -r requirements.txt\n", "3.12", 1),
    ("# build\nFROM python:3.10.4 AS build\nFROM gcr.io/distroless/python3\n", "3.10.4", 2),
    ("FROM --platform=linux/amd64 python:3.11-slim-bookworm as base\n", "3.11", 1),
    ("FROM docker.io/library/python:3.11\n", "3.11", 1),
    ("FROM localhost:5000/python:3.13.1-alpine3.20\n", "3.13.1", 1),
    ("FROM python:3.12@sha256:0123abcd\n", "3.12", 1),
    ("FROM nvidia/cuda:12.2.0-runtime-ubuntu22.04\nFROM python:3.10-slim\n", "3.10", 2),  # not a Python image: the next
    ("FROM python:latest AS tools\nFROM python:3.12\n", "3.12", 2),  # no version there: the first that names one
    ("ARG PYTHON_VERSION=3.9\nFROM python:${PYTHON_VERSION}-slim\n", "3.9", 2),
    ("FROM python:${PY:-3.11}\n", "3.11", 1),
    ("FROM \\\n    python:3.12\n", "3.12", 1),
    ("FROM continuumio/miniconda3:24.1.2-0\nFROM pytorch/pytorch:2.2.0-cuda12.1-cudnn8-runtime\n", None, 0),
    ("FROM python\n", None, 0),
    ("FROM pythonista:3.12\n", None, 0),
], ids=["slim", "as-build", "platform", "registry", "registry-port", "digest", "other-image-first", "latest-first",
        "arg", "arg-default", "continued", "no-python", "no-tag", "another-name"])
def test_a_dockerfile_names_the_first_python_image_with_a_version(tmp_path, text, version, line):
    asked = pyversion.read_dockerfile(write(tmp_path, "Dockerfile", text))
    assert (asked.version, asked.line, asked.pinned) == (version, line, True) if asked else version is None


@pytest.mark.parametrize(("text", "version", "line"), [
    ("from setuptools import setup\n\nsetup(\n    name='churn',\n    python_requires='>=3.12',\n)\n", "3.12", 5),
    ('setup(name="churn", python_requires = ">=3.6, <3.10")\n', "3.9", 1),  # only 3.9 of a runner's: for the setup to fail
    ("setup(python_requires='>=3.8')\n", "3.11", 1),
    ("setup(python_requires='>=3.99')\n", "", 1),  # none a runner has
    ("import sys\nsys.exit('never run')\nsetup(python_requires=PYTHON)\n", None, 0),
], ids=["at-least-3.12", "below-3.10", "default", "impossible", "a-name"])
def test_setup_py_python_requires_is_read_as_text(tmp_path, text, version, line):
    asked = pyversion.read_setup_py(write(tmp_path, "setup.py", text))
    assert (asked.version, asked.line, asked.pinned) == (version, line, False) if asked else version is None


@pytest.mark.parametrize(("text", "version", "line"), [
    ("[metadata]\nname = churn\n\n[options]\npackages = find:\npython_requires = >=3.10, <3.11\n", "3.10", 6),
    ("[options]\npython_requires: ~=3.12\n", "3.12", 2),
    ("[options]\npython_requires = >=3.7,<3.10\n", "3.9", 2),
    ("[metadata]\npython_requires = >=3.12\n", None, 0),  # not where setuptools reads it
    ("[options\npython_requires = >=3.12\n", None, 0),
    ("python_requires = >=3.12\n", None, 0),
], ids=["range", "colon", "below-3.10", "other-section", "broken", "no-section"])
def test_setup_cfg_python_requires_is_read_from_its_options(tmp_path, text, version, line):
    asked = pyversion.read_setup_cfg(write(tmp_path, "setup.cfg", text))
    assert (asked.version, asked.line, asked.pinned) == (version, line, False) if asked else version is None


def test_pyproject_toml_names_the_line_of_its_specifier(tmp_path):
    asked = pyversion.read_pyproject(write(tmp_path, "pyproject.toml", "[project]\nname = 'x'\nrequires-python = '>=3.12'\n"))
    assert asked is not None and asked.where == f"{tmp_path}/pyproject.toml:3: `requires-python = '>=3.12'`"
    assert pyversion.read_pyproject(write(tmp_path, "pyproject.toml", "[tool.ruff]\nline-length = 120\n")) is None


def test_find_reads_each_kind_in_the_project_then_at_the_root(tmp_path):
    project = tmp_path / "project"
    write(tmp_path, "Dockerfile", "FROM python:3.12-slim\n")
    write(project, "Dockerfile", "FROM python:3.13-slim\n")
    write(tmp_path, "runtime.txt", "python-3.10.14\n")
    asked, set_aside = pyversion.find([project, tmp_path])
    assert asked is not None and asked.path == f"{tmp_path}/runtime.txt" and set_aside == []  # runtime.txt, anywhere, first
    write(project, "pyproject.toml", "[project]\nname = 'x'\nrequires-python = '>=3.12'\n")
    asked, _ = pyversion.find([project, tmp_path])
    assert asked is not None and asked.version == "3.12" and asked.path.endswith("pyproject.toml")


def test_find_sets_aside_a_weak_pin_below_3_10_and_goes_on(tmp_path):
    write(tmp_path, "runtime.txt", "python-3.8.10\n")
    write(tmp_path, ".tool-versions", "python 3.7.17\n")
    write(tmp_path, "Dockerfile", "FROM python:3.12\n")
    asked, set_aside = pyversion.find([tmp_path])
    assert asked is not None and asked.version == "3.12"
    assert [old.version for old in set_aside] == ["3.8.10", "3.7.17"]
    (tmp_path / "Dockerfile").unlink()
    asked, set_aside = pyversion.find([tmp_path])
    assert asked is None and len(set_aside) == 2  # the default, then


def test_find_stops_at_a_specifier_no_runner_release_meets(tmp_path):
    write(tmp_path, "setup.py", "setup(python_requires='>=3.99')\n")
    write(tmp_path, "setup.cfg", "[options]\npython_requires = >=3.12\n")
    asked, _ = pyversion.find([tmp_path])
    assert asked is not None and asked.path.endswith("setup.py") and asked.version == ""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lockstep.pyversion", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "scripts"), "PATH": "/usr/bin:/bin"}, check=False)


def test_the_find_command_prints_the_version_and_where_and_warns_of_what_it_set_aside(tmp_path):
    write(tmp_path, "Dockerfile", "FROM python:3.8-slim\n")
    write(tmp_path, "setup.cfg", "[options]\npython_requires = >=3.10\n")
    proc = run("find", ".", ".", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "3.11\tsetup.cfg:2: `python_requires = >=3.10`\n"
    assert "Dockerfile:1: `FROM python:3.8-slim` asks for Python 3.8, and lockstep needs 3.10 or newer" in proc.stderr
    assert "the stages run on Python 3.11, which setup.cfg:2" in proc.stderr
    assert "set the `python-version` input" in proc.stderr
    (tmp_path / "setup.cfg").write_text("[options]\npython_requires = <3.10\n")  # the setup fails, naming setup.cfg
    proc = run("find", ".", cwd=tmp_path)
    assert proc.stdout == "3.9\tsetup.cfg:2: `python_requires = <3.10`\n" and proc.stderr == ""


def test_the_pyproject_command_is_as_before(tmp_path):
    write(tmp_path, "pyproject.toml", "[project]\nname = 'x'\nrequires-python = '>=3.13'\n")
    write(tmp_path, "runtime.txt", "python-3.12.1\n")
    proc = run("pyproject.toml", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "3.13\n"
