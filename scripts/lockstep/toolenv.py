"""lockstep's own environment in parts: what its checks need from the start (DVC, its remote
clients, YAML, JSON Schema, requests); Hydra, which DVC imports only to compose params.yaml for a
project whose DVC config enables it; and the packages only MLflow's client needs, which lockstep
uses last (the MLflow run, the registry). The setup action installs the first part (and Hydra's
when the project's `.dvc/config` has a `[hydra]` section), then MLflow's while lockstep's checks
already run (setup.sh `tool-background`), so the checks start about a quarter of the install
sooner. Hydra's part is the one DVC requirement most projects never use, and the slowest to
install: its `antlr4-python3-runtime` has no wheel, and is built from its source.

The parts come from `constraints.txt` itself: `uv pip compile` writes, under each pin, which
packages require it (`# via`). Every package reachable from lockstep's requirements other than
`mlflow-skinny` and without going through `hydra-core` or `omegaconf` is in the first part; what
only those reach is in Hydra's; the rest, what only MLflow's client reaches, in the later one. A file
without those annotations is not split: everything is in the first part.

setup.sh runs this file before lockstep's environment exists, with the job's Python and no site
packages (`python -I -S toolenv.py split CONSTRAINTS FIRST LATER HYDRA`): standard library only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Set as AbstractSet
from typing import NamedTuple

LATER_ROOT = "mlflow-skinny"  # what is installed after lockstep's checks have begun, with what only it needs
# what DVC imports only to compose params.yaml (dvc/utils/hydra.py), with what only they need
HYDRA_ROOTS = frozenset({"hydra-core", "omegaconf"})
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


class Parts(NamedTuple):
    """The pin lines of each part, in constraints.txt's order."""

    first: list[str]
    later: list[str]
    hydra: list[str]


def split(text: str) -> Parts:
    """The pin lines of the first part, of the later one and of Hydra's (the last two empty when
    the file cannot be split)."""
    pins, requirers = parse(text)
    everything = [line for lines in pins.values() for line in lines]
    requires: dict[str, set[str]] = {}
    for name, by in requirers.items():
        for requirer in by:
            requires.setdefault(requirer, set()).add(name)
    if LATER_ROOT not in requires.get(ROOT, ()):  # no annotations, or MLflow is not lockstep's
        return Parts(everything, [], [])
    first = _reach(requires, requires[ROOT] - {LATER_ROOT}, beyond=HYDRA_ROOTS)
    hydra = _reach(requires, HYDRA_ROOTS & _reach(requires, requires[ROOT] - {LATER_ROOT}), beyond=first)
    hydra -= _reach(requires, {LATER_ROOT}, beyond=first)  # what MLflow's client needs too is installed with it
    return Parts([line for name, lines in pins.items() if name in first for line in lines],
                 [line for name, lines in pins.items() if name not in first | hydra for line in lines],
                 [line for name, lines in pins.items() if name in hydra for line in lines])


def _reach(requires: dict[str, set[str]], start: AbstractSet[str], beyond: AbstractSet[str] = frozenset()) -> set[str]:
    """The packages `start` and what they require, transitively, without entering `beyond`."""
    reached: set[str] = set()
    stack = sorted(start - beyond)
    while stack:
        name = stack.pop()
        if name not in reached and name not in beyond:
            reached.add(name)
            stack.extend(requires.get(name, ()))
    return reached


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[0] != "split":
        print("usage: toolenv.py split CONSTRAINTS FIRST LATER HYDRA", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        parts = split(source.read())
    for path, lines in zip(argv[2:], parts, strict=True):
        with open(path, "w", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
