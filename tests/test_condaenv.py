"""A conda environment file read as the setup action installs it with uv (lockstep/condaenv.py):
what `conda env export` writes and what people write by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lockstep import condaenv

ROOT = Path(__file__).resolve().parents[1]

HAND_WRITTEN = """\
# the team's environment
name: churn
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.10
  - pip
  - numpy=1.26          # any 1.26.x
  - "scikit-learn>=1.3,<1.6"
  - conda-forge::pandas==2.1.4
  - pytorch
  - cudatoolkit=11.8
  - py-xgboost 2.0.*
  - pyyaml
  - pip:
      - dvclive>=3.48
      - -r requirements-extra.txt
      - -e .
variables:
  SEED: "7"
"""

EXPORTED = """\
name: churn
channels:
  - conda-forge
dependencies:
  - _libgcc_mutex=0.1=conda_forge
  - ca-certificates=2024.2.2=hbcca054_0
  - libgcc-ng=13.2.0=h807b86a_5
  - numpy=1.26.4=py311h64a7726_0
  - python=3.11.8=hab00c5b_0_cpython
  - scipy 1.12.0 py311h64a9d8b_2
  - pip=24.0=pyhd8ed1ab_0
  - pip:
    - mlflow-skinny==2.11.1
prefix: /home/dev/miniconda3/envs/churn
"""


def test_a_hand_written_file_gives_pypi_names_and_pep440_versions_and_its_pip_entries():
    env = condaenv.read(HAND_WRITTEN)
    lines, skipped = condaenv.requirements(env, Path("/work/project"))
    assert lines == [
        "numpy==1.26.*", "scikit-learn>=1.3,<1.6", "pandas==2.1.4", "torch", "xgboost==2.0.*", "pyyaml",
        "dvclive>=3.48", "-r /work/project/requirements-extra.txt", "-e .",
    ]
    assert skipped == ["cudatoolkit=11.8"]
    assert condaenv.python_version(env) == "3.10"


def test_an_exported_file_drops_build_strings_and_what_is_no_python_package():
    env = condaenv.read(EXPORTED)
    lines, skipped = condaenv.requirements(env)
    assert lines == ["numpy==1.26.4.*", "scipy==1.12.0.*", "mlflow-skinny==2.11.1"]
    assert skipped == ["_libgcc_mutex=0.1=conda_forge", "ca-certificates=2024.2.2=hbcca054_0", "libgcc-ng=13.2.0=h807b86a_5"]
    assert condaenv.python_version(env) == "3.11"


@pytest.mark.parametrize(("text", "python"), [
    ("dependencies:\n  - python>=3.12\n", "3.12"),
    ("dependencies:\n  - python\n", ""),
    ("dependencies: [python=3.9, numpy]\n", "3.9"),
    ("name: x\n", ""),
    ("dependencies:\n  - python=3.9|3.10\n", ""),  # conda's "or": not read, the default applies
])
def test_the_python_it_pins(text, python):
    assert condaenv.python_version(condaenv.read(text)) == python


def test_the_command_prints_the_lines_and_names_what_it_left_out(tmp_path):
    (tmp_path / "environment.yml").write_text(HAND_WRITTEN)
    proc = subprocess.run([sys.executable, "-m", "lockstep.condaenv", "requirements", str(tmp_path / "environment.yml")],
                          capture_output=True, text=True, cwd=ROOT / "scripts", check=True)
    assert proc.stdout.splitlines()[0] == "numpy==1.26.*"
    assert f"-r {tmp_path.resolve().as_posix()}/requirements-extra.txt" in proc.stdout
    assert "left out, not Python packages: cudatoolkit=11.8" in proc.stderr
    python = subprocess.run([sys.executable, "-m", "lockstep.condaenv", "python", str(tmp_path / "environment.yml")],
                            capture_output=True, text=True, cwd=ROOT / "scripts", check=True)
    assert python.stdout == "3.10\n"
