"""What a pull request changes in the project's packages, read from its requirement files."""

from __future__ import annotations

import pytest

from lockstep import packages

pytestmark = pytest.mark.unit


def compare(files: dict[str, tuple[str | None, str | None]]) -> list[str]:
    # a file the commit does not have reads as None, as git's reader gives it
    return packages.changes(files, base=lambda name: files.get(name, (None, None))[0],
                            head=lambda name: files.get(name, (None, None))[1])


def test_requirement_lines_added_and_removed_ignoring_comments_and_spacing():
    before = "pandas==2.2.3\nscikit-learn==1.6.1  # the model\n"
    after = "# pinned\npandas==2.2.3\n\nscikit-learn==1.7.0\ntyposquat-pkg\n"
    assert compare({"requirements.txt": (before, after)}) == [
        "requirements.txt: -scikit-learn==1.6.1",
        "requirements.txt: +scikit-learn==1.7.0",
        "requirements.txt: +typosquat-pkg",
    ]
    assert compare({"requirements.txt": (before, "pandas==2.2.3   \n# newer later\nscikit-learn==1.6.1\n")}) == []


def test_pyproject_counts_dependencies_extras_and_groups_not_tool_settings():
    before = '[project]\nname = "p"\ndependencies = ["dvc>=3"]\n[tool.ruff]\nline-length = 100\n'
    tool_only = before.replace("100", "120")
    assert compare({"pyproject.toml": (before, tool_only)}) == []
    after = ('[project]\nname = "p"\ndependencies = ["dvc>=3", "evil"]\n[project.optional-dependencies]\ngpu = ["torch"]\n'
             '[dependency-groups]\ndev = ["pytest"]\n')
    assert compare({"pyproject.toml": (before, after)}) == [
        "pyproject.toml: +dependencies: evil",
        "pyproject.toml: +dependency-groups.dev: pytest",
        "pyproject.toml: +optional-dependencies.gpu: torch",
    ]


def test_uv_lock_compares_pinned_versions():
    lock = '[[package]]\nname = "numpy"\nversion = "{}"\n[[package]]\nname = "pandas"\nversion = "2.2.3"\n'
    assert compare({"uv.lock": (lock.format("2.1.0"), lock.format("2.1.0"))}) == []
    assert compare({"uv.lock": (lock.format("2.1.0"), lock.format("2.2.0"))}) == ["uv.lock: -numpy==2.1.0", "uv.lock: +numpy==2.2.0"]


def test_files_added_removed_unreadable_and_named_twice():
    files = {"requirements.txt": (None, "x\n"), "src/requirements.txt": ("y\n", None), "uv.lock": ("[[package]]\n", "not = [toml")}
    assert packages.changes(["requirements.txt", *files], base=lambda n: files[n][0], head=lambda n: files[n][1]) == [
        "requirements.txt: added",
        "src/requirements.txt: removed",
        "uv.lock: changed (could not be read to compare)",
    ]


def test_files_a_requirements_file_includes_count_as_its_own():
    files = {
        "requirements.txt": ("-r requirements/base.txt\n-c constraints.txt\n", "-r requirements/base.txt\n-c constraints.txt\n"),
        "requirements/base.txt": ("numpy==2.1\n", "numpy==2.1\nevil==1\n"),
        "constraints.txt": ("pandas<3\n", "pandas<3\n"),
    }
    looked: list[str] = []

    def base(name):
        looked.append(name)
        return files.get(name, (None, None))[0]

    assert packages.changes(["requirements.txt"], base=base, head=lambda n: files.get(n, (None, None))[1]) == [
        "requirements/base.txt: +evil==1",
    ]
    assert looked == ["requirements.txt", "requirements/base.txt", "constraints.txt"]
    shared = {"ml/requirements.txt": ("-r ../common.txt\n-r /etc/passwd\n",) * 2, "common.txt": ("a\n", "b\n")}
    assert packages.changes(["ml/requirements.txt"], base=lambda n: shared[n][0], head=lambda n: shared[n][1]) == [
        "common.txt: -a", "common.txt: +b",  # a monorepo's shared file, one folder up; absolute paths are not read
    ]


def test_a_conda_environment_compares_its_packages_and_pip_entries_and_the_files_they_include():
    before = "name: churn\ndependencies:\n  - numpy=1.26\n  - pip:\n    - -r requirements-pip.txt\n"
    after = "name: renamed\n# a comment\ndependencies:\n  - numpy=1.26\n  - evil\n  - pip:\n    - -r requirements-pip.txt\n    - mlflow\n"
    files = {"environment.yml": (before, after), "requirements-pip.txt": ("six\n", "six\nother\n")}
    assert compare(files) == [
        "environment.yml: +dependencies: evil",
        "environment.yml: +pip: mlflow",
        "requirements-pip.txt: +other",
    ]
    same = {"environment.yml": (before, before.replace("churn", "renamed")), "requirements-pip.txt": ("six\n", "six\n")}
    assert compare(same) == []  # the environment's name installs nothing


def test_any_change_to_setup_py_counts_it_is_code():
    setup = "from setuptools import setup\nsetup(install_requires=['numpy'])\n"
    assert compare({"setup.py": (setup, setup)}) == []
    assert compare({"setup.py": (setup, setup + "import os\n")}) == [
        "setup.py: changed (code that decides the packages when the project is installed)",
    ]


def test_poetry_tables_the_build_system_and_uv_sources_count_not_poetry_settings():
    before = ('[tool.poetry]\nname = "p"\npackage-mode = false\n[tool.poetry.dependencies]\npython = "^3.11"\nnumpy = "^1.26"\n'
              '[build-system]\nrequires = ["poetry-core"]\nbuild-backend = "poetry.core.masonry.api"\n')
    assert compare({"pyproject.toml": (before, before.replace('name = "p"', 'name = "q"'))}) == []
    after = (before.replace('numpy = "^1.26"', 'numpy = "^1.26"\nevil-telemetry = "^1.0"')
             + '[tool.poetry.group.train.dependencies]\ntorch = {version = "2.5", source = "pytorch"}\n'
             + '[tool.uv.sources]\nnumpy = {index = "mirror"}\n').replace('["poetry-core"]', '["poetry-core", "backdoor"]')
    lock = '[[package]]\nname = "numpy"\nversion = "1.26.4"\n'
    assert compare({"pyproject.toml": (before, before), "poetry.lock": (lock, lock.replace("1.26.4", "1.26.0"))}) == [
        "poetry.lock: -numpy==1.26.4", "poetry.lock: +numpy==1.26.0"]
    assert compare({"pyproject.toml": (before, after)}) == [
        "pyproject.toml: +build-system.requires: backdoor",
        'pyproject.toml: +tool.poetry.dependencies: evil-telemetry = "^1.0"',
        'pyproject.toml: +tool.poetry.group.train.dependencies: torch = {"source": "pytorch", "version": "2.5"}',
        'pyproject.toml: +tool.uv.sources: numpy = {"index": "mirror"}',
    ]


def test_setup_cfg_beside_counts_its_dependencies_not_its_tool_settings():
    setup = "from setuptools import setup\nsetup()\n"
    cfg = "[metadata]\nname = p\n[options]\ninstall_requires =\n    numpy\n[flake8]\nmax-line-length = 100\n"
    assert compare({"setup.py": (setup, setup), "setup.cfg": (cfg, cfg.replace("100", "120"))}) == []
    changed = cfg.replace("    numpy\n", "    numpy\n    evil\n") + "[options.extras_require]\ngpu = torch\n"
    assert compare({"setup.py": (setup, setup), "setup.cfg": (cfg, changed)}) == [
        "setup.cfg: +options.extras_require.gpu: torch",
        "setup.cfg: +options.install_requires: evil",
    ]


def test_a_pipenv_lock_counts_its_default_packages_not_its_develop_ones():
    import json

    lock = {"_meta": {}, "default": {"six": {"version": "==1.16.0", "hashes": ["sha256:a"]}}, "develop": {"pytest": {"version": "==8.0"}}}
    dev_only = json.loads(json.dumps(lock))
    dev_only["develop"]["pytest"]["version"] = "==8.1"
    assert compare({"Pipfile.lock": (json.dumps(lock), json.dumps(dev_only))}) == []
    bumped = json.loads(json.dumps(lock))
    bumped["default"]["evil"] = {"version": "==1.0", "hashes": ["sha256:b"]}
    assert compare({"Pipfile.lock": (json.dumps(lock), json.dumps(bumped))}) == ["Pipfile.lock: +evil==1.0 --hash=sha256:b"]

