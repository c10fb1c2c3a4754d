"""Release checks, run by .github/workflows/release.yml on a `vX.Y.Z` tag.

`python -m lockstep.release TAG` checks that the tag is `vX.Y.Z`, that pyproject.toml (the one
version source) says X.Y.Z, and that CHANGELOG.md has a `## [X.Y.Z] - YYYY-MM-DD` entry; it
prints the major tag (`vX`) to move. Standard library only: it runs before lockstep is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


class ReleaseError(Exception):
    pass


def check(tag: str, root: Path) -> str:
    match = TAG.match(tag)
    if not match:
        raise ReleaseError(f"tag {tag!r} is not vX.Y.Z; release tags are immutable semantic versions")
    version = tag[1:]
    pyproject = (root / "pyproject.toml").read_text("utf-8")
    declared = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M)
    if not declared or declared.group(1) != version:
        found = declared.group(1) if declared else "nothing"
        raise ReleaseError(f"pyproject.toml says version {found}, the tag says {version}: bump pyproject.toml first")
    changelog = (root / "CHANGELOG.md").read_text("utf-8")
    if not re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M):
        raise ReleaseError(f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' entry: move the Unreleased notes under it")
    return f"v{match.group(1)}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lockstep.release vX.Y.Z", file=sys.stderr)
        return 2
    try:
        major = check(args[0], Path.cwd())
    except ReleaseError as exc:
        print(f"::error title=release check failed::{exc}")
        return 1
    print(major)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
