"""lockstep's own environment in two parts: what its checks need from the start (DVC, its remote
clients, YAML, JSON Schema, requests), and the packages only MLflow's client needs, which lockstep
uses last (the MLflow run, the registry). The setup action installs the first part, then the
second while lockstep's checks already run (setup.sh `tool-background`), so the checks start
about a quarter of the install sooner.

The parts come from `constraints.txt` itself: `uv pip compile` writes, under each pin, which
packages require it (`# via`). Every package reachable from lockstep's requirements other than
`mlflow-skinny` is in the first part; what only MLflow's client reaches is in the second. A file
without those annotations is not split: everything is in the first part.

setup.sh runs this file before lockstep's environment exists, with the job's Python and no site
packages (`python -I -S toolenv.py split CONSTRAINTS FIRST LATER`): standard library only.
"""

from __future__ import annotations

import re
import sys

LATER_ROOT = "mlflow-skinny"  # what is installed after lockstep's checks have begun, with what only it needs
ROOT = "lockstep"  # how `uv pip compile pyproject.toml` names the project in `# via` lines

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """The pins of a `uv pip compile` output ({name: [lines]}, a name pinned per Python version has
    several) and who requires each ({name: {requirer}}; `lockstep` for the project itself)."""
    pins: dict[str, list[str]] = {}
    requirers: dict[str, set[str]] = {}
    current = None
    listing = False
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith(("#", "-")):
            found = _NAME.match(line)
            if not found:
                current = None
                continue
            current = _canonical(found.group(1))
            pins.setdefault(current, []).append(line)
            requirers.setdefault(current, set())
            listing = False
        elif current is not None and stripped.startswith("# via"):
            named = stripped.removeprefix("# via").strip()
            listing = not named
            if named:
                requirers[current].add(_canonical(named.split()[0]))
        elif current is not None and listing and stripped.startswith("#   "):
            requirers[current].add(_canonical(stripped.removeprefix("#").strip().split()[0]))
        else:
            listing = False
    return pins, requirers


def split(text: str) -> tuple[list[str], list[str]]:
    """The pin lines of the first part and of the later one (empty when the file cannot be split)."""
    pins, requirers = parse(text)
    everything = [line for lines in pins.values() for line in lines]
    requires: dict[str, set[str]] = {}
    for name, by in requirers.items():
        for requirer in by:
            requires.setdefault(requirer, set()).add(name)
    if LATER_ROOT not in requires.get(ROOT, ()):  # no annotations, or MLflow is not lockstep's
        return everything, []
    first: set[str] = set()
    stack = sorted(requires[ROOT] - {LATER_ROOT})
    while stack:
        name = stack.pop()
        if name not in first:
            first.add(name)
            stack.extend(requires.get(name, ()))
    return ([line for name, lines in pins.items() if name in first for line in lines],
            [line for name, lines in pins.items() if name not in first for line in lines])


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "split":
        print("usage: toolenv.py split CONSTRAINTS FIRST LATER", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        first, later = split(source.read())
    for path, lines in ((argv[2], first), (argv[3], later)):
        with open(path, "w", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
