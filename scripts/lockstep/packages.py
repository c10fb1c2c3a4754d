"""Which packages a pull request changes in the project's environment, read from its requirement files.

The project's environment is installed from the PR's requirements, and the base's evaluation of the
PR's model runs in it too: a new or replaced package runs its code there (an import, a `.pth` file).
So a PR that changes them is marked for a maintainer's review, with what changed. Only what decides
the installed packages counts: the lines of a requirements file, `[project]` dependencies (and
optional ones, and dependency groups) of a `pyproject.toml`, the pinned versions of a `uv.lock`, the
packages and `pip:` entries of a conda `environment.yml`, Poetry's dependency tables and sources,
uv's sources and indexes, the build system, setuptools' `setup.cfg` dependencies; a changed comment
or tool setting is no change. A `setup.py` is code: any change to it counts.
"""

from __future__ import annotations

import configparser
import json
import posixpath
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # a declared dependency below 3.11
    import tomli as tomllib

from . import condaenv, pipfile

# what setup.sh installs from by default, relative to the project: the first that exists
DEFAULT_FILES = ("requirements.txt", "src/requirements.txt", "uv.lock", "pyproject.toml", "setup.py", *condaenv.NAMES,
                 *pipfile.NAMES)


def changes(files: Iterable[str], base: Callable[[str], str | None], head: Callable[[str], str | None]) -> list[str]:
    """`file: +added` / `file: -removed` lines (and `file: added` / `file: removed` for whole files)
    for the requirement files whose packages differ between the base and the head. `base` and
    `head` return a file's text at that commit, or None when it has none."""
    found: list[str] = []
    queue = list(dict.fromkeys(files))
    seen = set(queue)
    for name in queue:
        before, after = base(name), head(name)
        # files a requirements file includes (`-r`, `-c`) count as its own; so do the setup.cfg beside
        # a pyproject.toml or setup.py (setuptools reads the dependencies from there) and the
        # poetry.lock beside it (the setup action installs the versions it pins)
        beside = [posixpath.join(posixpath.dirname(name), other) for other in ("setup.cfg", "poetry.lock")
                  if posixpath.basename(name) in ("pyproject.toml", "setup.py")]
        for text in (before, after):
            for included in [*_included(name, text or ""), *beside]:
                if included not in seen and len(seen) < 50:
                    seen.add(included)
                    queue.append(included)
        if before == after:
            continue
        if before is None or after is None:
            found.append(f"{name}: {'added' if before is None else 'removed'}")
            continue
        old, new = _entries(name, before), _entries(name, after)
        if name.endswith(".py"):
            found.append(f"{name}: changed (code that decides the packages when the project is installed)")
            continue
        if old is None or new is None:
            found.append(f"{name}: changed (could not be read to compare)")
            continue
        found += [f"{name}: -{entry}" for entry in sorted(old - new)]
        found += [f"{name}: +{entry}" for entry in sorted(new - old)]
    return found


def _included(name: str, text: str) -> list[str]:
    """The files a requirements file includes with `-r`/`-c` (`--requirement`, `--constraint`),
    relative to the same folder as `name` (the caller's reader refuses paths that leave the
    repository); not absolute paths or URLs."""
    if name.endswith((".toml", ".lock", ".py")):
        return []
    folder = posixpath.dirname(name)
    found = []
    lines = condaenv.read(text).pip if _is_environment(name) else _requirement_line_list(text)
    for line in lines:  # in file order: the report lists files as they are met
        match = re.match(r"(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)$", line)
        if match and "://" not in match.group(1):
            path = posixpath.normpath(posixpath.join(folder, match.group(1)))
            if not path.startswith("/"):
                found.append(path)
    return found


def _is_environment(name: str) -> bool:
    return posixpath.basename(name) in condaenv.NAMES


def _entries(name: str, text: str) -> set[str] | None:
    if _is_environment(name):
        env = condaenv.read(text)
        return {f"dependencies: {spec}" for spec in env.conda} | {f"pip: {entry}" for entry in env.pip}
    if posixpath.basename(name) == "setup.cfg":
        return _setup_cfg_entries(text)
    if posixpath.basename(name) in pipfile.NAMES:  # what the setup action installs from it: the default packages
        try:
            project = pipfile.parse(posixpath.basename(name), text)
        except ValueError:
            return None
        return set(pipfile.requirements(project))
    if name.endswith(".toml") or name.endswith(".lock"):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        return _lock_entries(data) if name.endswith(".lock") else _pyproject_entries(data)
    return _requirement_lines(text)


def _requirement_lines(text: str) -> set[str]:
    return set(_requirement_line_list(text))


def _requirement_line_list(text: str) -> list[str]:
    """The requirement lines in file order, without comments, continuations and spacing differences."""
    joined = re.sub(r"\\\n", " ", text)
    lines = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            lines.append(re.sub(r"\s+", " ", line))
    return lines


def _pyproject_entries(data: dict) -> set[str]:
    project = data.get("project")
    if not isinstance(project, dict):
        project = {}
    entries = {f"dependencies: {dep}" for dep in _strings(project.get("dependencies"))}
    optional = project.get("optional-dependencies")
    for extra, deps in (optional.items() if isinstance(optional, dict) else ()):
        entries |= {f"optional-dependencies.{extra}: {dep}" for dep in _strings(deps)}
    groups = data.get("dependency-groups")
    for group, deps in (groups.items() if isinstance(groups, dict) else ()):
        entries |= {f"dependency-groups.{group}: {dep}" for dep in _strings(deps)}
    # what installing the project runs (its build backend) and where its packages come from
    build = data.get("build-system")
    if isinstance(build, dict):
        entries |= {f"build-system.requires: {dep}" for dep in _strings(build.get("requires"))}
        if isinstance(build.get("build-backend"), str):
            entries.add(f"build-system.build-backend: {build['build-backend']}")
    tool = _table(data.get("tool"))
    poetry = _table(tool.get("poetry"))
    tables = {f"tool.poetry.{key}": poetry.get(key) for key in ("dependencies", "dev-dependencies", "extras", "source")}
    poetry_groups = poetry.get("group")
    for group, spec in (poetry_groups.items() if isinstance(poetry_groups, dict) else ()):
        tables[f"tool.poetry.group.{group}.dependencies"] = spec.get("dependencies") if isinstance(spec, dict) else None
    uv = _table(tool.get("uv"))
    tables |= {f"tool.uv.{key}": uv.get(key) for key in ("sources", "index", "index-url", "extra-index-url", "find-links")}
    for table, value in tables.items():
        entries |= {f"{table}: {item}" for item in _flat(value)}
    return entries


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _flat(value: object) -> list[str]:
    """A TOML table or list of Poetry's or uv's package settings as one line per entry
    (`numpy = "^1.26"`, `torch = {"source": "pytorch", "version": "2.5"}`)."""
    if isinstance(value, dict):
        return [f"{key} = {_inline(item)}" for key, item in value.items()]
    if isinstance(value, list):
        return [_inline(item) for item in value]
    return [] if value is None else [_inline(value)]


def _inline(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _setup_cfg_entries(text: str) -> set[str] | None:
    """setuptools' declarative dependencies: `[options]` install_requires, setup_requires and
    dependency_links, and `[options.extras_require]`; the rest of the file (flake8's, pytest's
    settings) installs nothing."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    wanted = [("options", key) for key in ("install_requires", "setup_requires", "dependency_links")]
    if parser.has_section("options.extras_require"):
        wanted += [("options.extras_require", key) for key in parser["options.extras_require"]]
    entries: set[str] = set()
    for section, key in wanted:
        if parser.has_option(section, key):
            entries |= {f"{section}.{key}: {line}" for line in _requirement_line_list(parser.get(section, key))}
    return entries


def _lock_entries(data: dict) -> set[str]:
    packages = data.get("package")
    return {f"{item.get('name')}=={item.get('version', '?')}" for item in (packages if isinstance(packages, list) else ())
            if isinstance(item, dict) and item.get("name")}


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
