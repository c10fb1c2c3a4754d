"""A Poetry project's dependencies and lock, as the setup action installs them (lockstep/poetryenv.py)."""

from __future__ import annotations

import pytest

from lockstep import poetryenv

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("spec", "pep440"), [
    ("^1.2.3", ">=1.2.3,<2.0.0"), ("^0.2.3", ">=0.2.3,<0.3.0"), ("^0.0.3", ">=0.0.3,<0.0.4"), ("^1.26", ">=1.26,<2.0"),
    ("^0", ">=0,<1"), ("~1.2.3", ">=1.2.3,<1.3"), ("~1", ">=1,<2"), ("1.2.3", "==1.2.3"), ("1.2.*", "==1.2.*"),
    ("*", ""), (">=1.2,<2.0", ">=1.2,<2.0"), (">= 1.2 < 2.0", ">=1.2,<2.0"), ("^1.0 || ^2.0", ""), ("!=1.5", "!=1.5"),
])
def test_poetry_constraints_read_as_pep_440(spec, pep440):
    assert poetryenv.constraint(spec) == pep440


def test_the_main_dependencies_named_groups_and_extras_and_sources_as_requirement_lines():
    data = {"tool": {"poetry": {
        "package-mode": False,
        "dependencies": {
            "python": "^3.10", "numpy": "^1.26", "pandas": {"version": "^2.2", "extras": ["parquet"]},
            "torch": [{"version": "2.5.1", "markers": "sys_platform == 'linux'", "source": "pytorch"}],
            "tomli": {"version": "^2", "python": "<3.11"}, "lightgbm": {"version": "^4", "optional": True},
            "feats": {"git": "https://example.com/feats.git", "tag": "v1"}, "shared": {"path": "../shared", "develop": True},
        },
        "extras": {"boost": ["lightgbm"]},
        "group": {"dev": {"dependencies": {"pytest": "^8"}}, "train": {"dependencies": {"optuna": "~4.1"}}},
        "source": [{"name": "pytorch", "url": "https://download.pytorch.org/whl/cpu", "priority": "explicit"}],
    }}}
    assert poetryenv.applies(data)
    assert poetryenv.requirements(data, []) == [
        "--extra-index-url https://download.pytorch.org/whl/cpu",
        "numpy >=1.26,<2.0",
        "pandas[parquet] >=2.2,<3.0",
        "torch ==2.5.1 ; (sys_platform == 'linux')",
        'tomli >=2,<3 ; (python_version < "3.11")',
        "feats @ git+https://example.com/feats.git@v1",
        "-e ../shared",
    ]
    chosen = poetryenv.requirements(data, ["train", "boost"])
    assert "optuna >=4.1,<4.2" in chosen and "lightgbm >=4,<5" in chosen and not any("pytest" in line for line in chosen)
    with pytest.raises(SystemExit, match="no group or extra named 'gpu'"):
        poetryenv.requirements(data, ["gpu"])


def test_poetry_2_with_a_project_table_is_read_as_any_project():
    assert not poetryenv.applies({"project": {"dependencies": ["numpy"]}, "tool": {"poetry": {"dependencies": {"numpy": "*"}}}})
    assert not poetryenv.applies({"tool": {"poetry": {"dependencies": {"python": "^3.11"}}}})  # nothing to install


def test_the_lock_pins_each_package_from_an_index_once():
    lock = {"package": [
        {"name": "six", "version": "1.16.0"},
        {"name": "numpy", "version": "1.26.4", "markers": "python_version < '3.13'"},
        {"name": "numpy", "version": "2.1.0", "markers": "python_version >= '3.13'"},
        {"name": "feats", "version": "1.0", "source": {"type": "git", "url": "https://example.com/feats.git"}},
    ]}
    assert poetryenv.constraints(lock) == ["six==1.16.0"]


def test_a_named_dependency_group_is_a_group_for_uv_and_an_extra_an_extra():
    data = {"project": {"optional-dependencies": {"gpu": ["torch"]}}, "dependency-groups": {"train": ["optuna"]}}
    assert poetryenv.selection(data, ["train", "gpu"]) == ["--group", "train", "--extra", "gpu"]

