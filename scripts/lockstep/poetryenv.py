"""A Poetry project as the setup action installs it, with uv: the dependencies `[tool.poetry]`
declares (the main ones, and the groups or extras the `requirements` input names, as in
`pyproject.toml[train]`) as PEP 508 requirement lines, its sources as extra indexes, and the
versions its `poetry.lock` pins as constraints, so that CI installs what the developer's `poetry
install` did without building the project (a Poetry project in non-package mode cannot be built).

Run by the runner's own python3 before any environment exists: the standard library only
(`tomllib`, Python 3.11 and newer, as GitHub's runners have it).

    python3 -m lockstep.poetryenv applies PYPROJECT                 exit 0 when Poetry declares the dependencies
    python3 -m lockstep.poetryenv requirements PYPROJECT [NAMES]    requirement lines (NAMES: groups, extras; comma-separated)
    python3 -m lockstep.poetryenv constraints LOCK                  `name==version` lines of a poetry.lock
    python3 -m lockstep.poetryenv selection PYPROJECT NAMES         uv's `--group`/`--extra` options for NAMES
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

_VERSION = re.compile(r"^\d+(\.\d+)*([a-z]+\d*)?(\.\*)?$")


def _load(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def poetry_table(data: dict[str, Any]) -> dict[str, Any]:
    return _table(_table(data.get("tool")).get("poetry"))


def applies(data: dict[str, Any]) -> bool:
    """Poetry declares the dependencies: `[tool.poetry.dependencies]` beyond `python`, and no
    `[project]` dependencies (Poetry 2 projects that use `[project]` are read as any project is)."""
    project = _table(data.get("project"))
    dependencies = poetry_table(data).get("dependencies")
    declared = isinstance(dependencies, dict) and any(name != "python" for name in dependencies)
    return declared and not project.get("dependencies")


def constraint(spec: str) -> str:
    """A Poetry version constraint as a PEP 440 specifier set: `^1.2.3` is `>=1.2.3,<2.0.0`, `~1.2`
    is `>=1.2,<1.3`, `1.2.3` is `==1.2.3`, `*` is nothing; `||` (a union PEP 440 cannot say) is
    nothing too, and the lock's pin decides."""
    spec = spec.strip()
    if not spec or spec == "*" or "||" in spec or "|" in spec:
        return ""
    clauses = []
    for part in filter(None, re.split(r"\s*,\s*|\s+(?=[<>=!~^])", spec)):
        part = part.replace(" ", "")
        if part.startswith("^"):
            numbers = _numbers(part[1:])
            first = next((i for i, n in enumerate(numbers) if n != 0), len(numbers) - 1)
            upper = [*numbers[:first], numbers[first] + 1] + [0] * (len(numbers) - first - 1)
            clauses += [f">={part[1:]}", f"<{'.'.join(map(str, upper))}"]
        elif part.startswith("~") and not part.startswith("~="):
            numbers = _numbers(part[1:])
            upper = [numbers[0] + 1] if len(numbers) == 1 else [numbers[0], numbers[1] + 1]
            clauses += [f">={part[1:]}", f"<{'.'.join(map(str, upper))}"]
        elif _VERSION.match(part):
            clauses.append(f"=={part}")
        else:
            clauses.append(part)
    return ",".join(clauses)


def _numbers(version: str) -> list[int]:
    found = [int(n) for n in re.findall(r"\d+", version.split("*")[0])[:3]]
    return found or [0]


def requirement(name: str, spec: Any) -> list[str]:
    """The requirement lines of one dependency entry: a constraint, a table (`version`, `extras`,
    `markers`, `python`, `git`/`url`/`path`), or a list of tables (one per marker)."""
    if isinstance(spec, list):
        return [line for item in spec for line in requirement(name, item)]
    if not isinstance(spec, dict):
        return [f"{name}{_spec(constraint(str(spec)))}"]
    extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
    markers = [str(spec["markers"])] if spec.get("markers") else []
    if spec.get("python"):
        python = constraint(str(spec["python"]))
        markers += [f'python_version {op} "{version}"' for op, version in
                    (re.match(r"(==|!=|<=|>=|<|>|~=)(.*)", clause).groups()  # type: ignore[union-attr]
                     for clause in python.split(",") if clause and re.match(r"(==|!=|<=|>=|<|>|~=)", clause))
                    if "*" not in version]
    marker = f" ; {' and '.join(f'({m})' for m in markers)}" if markers else ""
    if spec.get("git"):
        rev = spec.get("rev") or spec.get("tag") or spec.get("branch")
        url = str(spec["git"])
        return [f"{name}{extras} @ {'' if url.startswith('git+') else 'git+'}{url}{f'@{rev}' if rev else ''}{marker}"]
    if spec.get("url"):
        return [f"{name}{extras} @ {spec['url']}{marker}"]
    if spec.get("path"):
        return [f"{name}{extras} @ {Path(str(spec['path'])).as_posix()}{marker}" if not spec.get("develop")
                else f"-e {Path(str(spec['path'])).as_posix()}"]
    return [f"{name}{extras}{_spec(constraint(str(spec.get('version', '*'))))}{marker}"]


def _spec(text: str) -> str:
    return f" {text}" if text else ""


def requirements(data: dict[str, Any], names: list[str]) -> list[str]:
    """The main dependencies, those of the named groups, and the optional ones the named extras
    list; each source as an `--extra-index-url` line (the default index stays)."""
    poetry = poetry_table(data)
    main = _table(poetry.get("dependencies"))
    extras = _table(poetry.get("extras"))
    wanted = {package for extra in names for package in extras.get(extra, []) if isinstance(package, str)}
    tables = [main]
    groups = _table(poetry.get("group"))
    for name in names:
        group = groups.get(name)
        if isinstance(group, dict) and isinstance(group.get("dependencies"), dict):
            tables.append(group["dependencies"])
        elif name == "dev" and isinstance(poetry.get("dev-dependencies"), dict):
            tables.append(poetry["dev-dependencies"])
        elif name not in extras:
            raise SystemExit(f"pyproject.toml[{name}]: Poetry declares no group or extra named {name!r}")
    lines = [f"--extra-index-url {source['url']}" for source in poetry.get("source", [])
             if isinstance(source, dict) and isinstance(source.get("url"), str)]
    for table in tables:
        for package, spec in table.items():
            if package == "python" or (isinstance(spec, dict) and spec.get("optional") and package not in wanted):
                continue
            lines += requirement(package, spec)
    return lines


def constraints(lock: dict[str, Any]) -> list[str]:
    """`name==version` for each package the lock pins from an index: once (a package locked at two
    versions, one per marker, is left to the resolver), not those from git, a URL or a folder."""
    versions: dict[str, set[str]] = {}
    for package in lock.get("package", []):
        if not isinstance(package, dict) or not package.get("name") or not package.get("version"):
            continue
        source = _table(package.get("source"))
        if source.get("type") in ("git", "url", "file", "directory"):
            continue
        versions.setdefault(str(package["name"]), set()).add(str(package["version"]))
    return [f"{name}=={next(iter(found))}" for name, found in sorted(versions.items()) if len(found) == 1]


def selection(data: dict[str, Any], names: list[str]) -> list[str]:
    """uv's options for `pyproject.toml[NAMES]` of a project that declares `[project]`: `--group`
    for a PEP 735 dependency group, `--extra` for an optional dependency (uv's flag for both
    would be `--extra`, which fails on a group)."""
    groups = _table(data.get("dependency-groups"))
    return [option for name in names for option in (("--group" if name in groups else "--extra"), name)]


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("applies", "requirements", "constraints", "selection"):
        print(__doc__, file=sys.stderr)
        return 2
    data = _load(Path(argv[1]))
    if argv[0] == "applies":
        return 0 if applies(data) else 1
    if argv[0] == "constraints":
        print("\n".join(constraints(data)))
        return 0
    names = [name.strip() for name in (argv[2] if len(argv) > 2 else "").split(",") if name.strip()]
    print("\n".join(selection(data, names) if argv[0] == "selection" else requirements(data, names)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
