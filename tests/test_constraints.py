"""Releases install the exact runtime versions they were tested with: constraints.txt."""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONSTRAINTS = ROOT / "constraints.txt"
REGENERATE = "uv pip compile pyproject.toml --universal --python-version 3.10 -o constraints.txt"


def _pins() -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, environment marker)]: a universal resolution may pin per Python version."""
    pins: dict[str, list[tuple[str, str]]] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line or line.startswith("#") or line.startswith(" "):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        pins.setdefault(canonicalize_name(requirement.name), []).append((specifier.version, str(requirement.marker or "")))
    return pins


def _runtime() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_the_header_says_how_to_regenerate():
    assert f"#    {REGENERATE}\n" in CONSTRAINTS.read_text()


def test_every_runtime_dependency_is_pinned_inside_its_pyproject_range():
    pins = _pins()
    for requirement in _runtime():
        versions = pins.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not pinned in constraints.txt"
        for version, _marker in versions:
            assert requirement.specifier.contains(version, prereleases=True), f"{requirement.name}=={version} is outside {requirement}"


def test_the_extras_are_pinned_too():
    """dvc[s3] needs dvc-s3: what each extra of a runtime dependency pulls in is pinned as well."""
    pins = _pins()
    for requirement in _runtime():
        for extra in requirement.extras:
            pulled = [Requirement(text) for text in metadata.requires(requirement.name) or []
                      if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", text)]
            assert pulled, f"{requirement.name}[{extra}] pulls in nothing?"
            missing = [str(r.name) for r in pulled if canonicalize_name(r.name) not in pins]
            assert missing == [], f"{requirement.name}[{extra}] needs {missing}, not pinned"
    assert "dvc-s3" in pins


def test_the_tests_run_with_the_pinned_versions():
    """`.ci/run` installs with `-c constraints.txt`: what is tested is what a release installs."""
    pins = _pins()
    for requirement in _runtime():
        installed = metadata.version(requirement.name)
        assert installed in [version for version, _marker in pins[canonicalize_name(requirement.name)]], requirement.name


def test_the_setup_action_installs_lockstep_with_the_constraints():
    setup = (ROOT / "actions" / "setup" / "setup.sh").read_text().replace("\\\n", " ")
    install = [line for line in setup.splitlines() if '"$source_dir/pyproject.toml"' in line and "pip install" in line]
    assert install and all('-c "$source_dir/constraints.txt"' in line for line in install)
    key = setup[setup.index("cache_key() {"):setup.index("\n}\n", setup.index("cache_key() {"))]
    assert '"$source_dir/constraints.txt"' in key  # a new pin is a new bytecode cache
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()
