"""Which Python a project asks for in its pyproject.toml, for the setup action when neither the
`python-version` input nor a `.python-version` file says: `[project] requires-python`, or
Poetry's `[tool.poetry.dependencies] python`. Run by the runner's own python3 before any
environment exists, so it uses the standard library only, and prints nothing when it cannot tell.

    python3 -m lockstep.pyversion PYPROJECT [PYPROJECT ...]   prints e.g. 3.12
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT = "3.11"
# the CPython releases a runner offers, the default first: the first one the project accepts wins
CANDIDATES = ("3.11", "3.12", "3.13", "3.10", "3.14", "3.9")
_CLAUSE = re.compile(r"^(~=|===|==|!=|<=|>=|<|>|\^|~)?\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?$")


def _padded(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    return tuple((parts + [0, 0, 0])[:3])


def accepts(spec: str, version: str) -> bool:
    """Whether a runner's `version` (a minor release, `3.12`, whose newest patch release a runner
    installs) meets `spec`: a PEP 440 specifier set or a Poetry constraint (`^3.10`, `~3.11`,
    `>=3.10,<3.13`, `3.12.*`). Raises ValueError for what it cannot read (`||`)."""
    ours = (*_padded(version)[:2], 99)  # the newest patch release
    for clause in filter(None, (part.strip() for part in spec.split(","))):
        if clause == "*":
            continue
        match = _CLAUSE.match(clause)
        if not match:
            raise ValueError(f"cannot read {clause!r}")
        op, text, star = match.group(1) or "==", match.group(2), bool(match.group(3))
        bound, given = _padded(text), len(text.split("."))
        prefix = ours[:given] == bound[:given]
        if op in ("==", "==="):
            ok = prefix if star or given <= 2 else ours[:2] == bound[:2]
        elif op == "!=":
            ok = not prefix if star or given <= 2 else True
        elif op == ">=":
            ok = ours >= bound
        elif op == ">":
            ok = ours > bound and not (given <= 2 and prefix)
        elif op == "<=":
            ok = ours <= bound or (given <= 2 and prefix)
        elif op == "<":
            ok = ours < bound
        elif op == "~=":
            ok = ours >= bound and ours[:given - 1] == bound[:given - 1]
        elif op == "^":  # Poetry: at least this, below the next major release
            ok = ours >= bound and ours[0] == bound[0]
        else:  # "~", Poetry: at least this, below the next minor release when one is given
            ok = ours >= bound and (given < 2 or ours[:2] == bound[:2])
        if not ok:
            return False
    return True


def requested(text: str) -> str | None:
    """The `requires-python` (or Poetry's `python`) of a pyproject.toml's text, None when absent."""
    try:
        import tomllib
    except ImportError:  # Python 3.10 and older: the one line is enough
        found = re.search(r'^\s*requires-python\s*=\s*["\']([^"\']+)["\']', text, re.M)
        return found.group(1) if found else None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    poetry = (data.get("tool") or {}).get("poetry") or {}
    spec = project.get("requires-python") or ((poetry.get("dependencies") or {}).get("python") if isinstance(poetry, dict) else None)
    return spec if isinstance(spec, str) else None


def choose(spec: str) -> str | None:
    """The runner release to use for `spec`: the default when it is accepted, else the first of
    CANDIDATES that is; None when none is or the specifier cannot be read."""
    try:
        return next((version for version in CANDIDATES if accepts(spec, version)), None)
    except ValueError:
        return None


def main(argv: list[str]) -> int:
    for name in argv:
        path = Path(name)
        if path.is_file():
            spec = requested(path.read_text(encoding="utf-8", errors="replace"))
            if spec:
                chosen = choose(spec)
                if chosen:
                    print(chosen)
                return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
