"""Releases install the exact runtime versions they were tested with: constraints.txt."""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.markers import Marker
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


def test_the_constraints_are_a_complete_resolution():
    """actions/setup installs lockstep's environment with `uv pip sync constraints.txt`, which
    resolves nothing: every dependency of every pin that applies here (with the extras asked for
    on the way) must be pinned, at the version this environment has."""
    here = {name: version for name, entries in _pins().items() for version, marker in entries
            if not marker or Marker(marker).evaluate()}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras), "pyproject.toml") for r in _runtime()]
    while todo:
        name, extras, via = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        assert name in here, f"{name} (needed by {via}) is not pinned in constraints.txt: {REGENERATE}"
        assert metadata.version(name) == here[name], f"{name}: this environment has {metadata.version(name)}, the pin {here[name]}"
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if any(requirement.marker is None or requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras), name))
    assert len(seen) > 100  # DVC, its S3 support and MLflow's client


def test_the_setup_action_installs_lockstep_from_the_constraints():
    setup = (ROOT / "actions" / "setup" / "setup.sh").read_text().replace("\\\n", " ")
    tool = [line for line in setup.splitlines() if '"$root/tool/bin/python"' in line and " uv pip " in line]
    # constraints.txt, split in parts (toolenv.py): the first synced, Hydra's for projects that use
    # it, MLflow's client after it
    assert '"$python" -I -S "$source_dir/scripts/lockstep/toolenv.py" split "$source_dir/constraints.txt"' in setup
    hydra = [line for line in tool if '-r "$root/tool-hydra.txt"' in line]
    assert len(hydra) == 1 and "--no-deps" in hydra[0]
    synced = [line for line in tool if " uv pip sync " in line]
    assert len(synced) == 1 and '&& uv pip sync --quiet --python "$root/tool/bin/python" "$root/tool-first.txt"' in synced[0]
    later = [line for line in tool if '-r "$root/tool-later.txt"' in line]
    assert len(later) == 1 and "--no-deps" in later[0]  # as pinned, nothing resolved
    extras = [line for line in tool if "dvc[$extras]" in line]
    assert extras and all('-c "$source_dir/constraints.txt"' in line for line in extras)  # the remotes' extras
    assert all('${without[@]+"${without[@]}"}' in line for line in extras)  # and not Hydra, unless the project uses it
    key = setup[setup.index("cache_key() {"):setup.index("\n}\n", setup.index("cache_key() {"))]
    assert '"$source_dir/constraints.txt"' in key  # a new pin is a new bytecode cache
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()
