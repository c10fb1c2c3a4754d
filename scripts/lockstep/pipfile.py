"""A pipenv project (`Pipfile.lock`, else `Pipfile`) as the setup action installs it, with uv: the
lock's `default` packages at their locked versions (with their hashes when every one has them, as
`pipenv install --deploy` checks them), else the Pipfile's `[packages]`; never the develop ones.
Its sources are the indexes, and its `python_version` the Python to install for. Run by the
runner's own python3 before any environment exists: the standard library only (`tomllib` for a
Pipfile, Python 3.11 and newer, as GitHub's runners have it).

    python3 -m lockstep.pipfile requirements FILE   requirement lines (to install with uv)
    python3 -m lockstep.pipfile python FILE         the Python it asks for (e.g. 3.11), or nothing
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

NAMES = ("Pipfile.lock", "Pipfile")


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read(path: Path) -> dict[str, Any]:
    return parse(path.name, path.read_text(encoding="utf-8"))


def parse(name: str, text: str) -> dict[str, Any]:
    """The lock (JSON) or the Pipfile (TOML) as one shape: `sources`, `packages`, `python`.
    ValueError when the text is neither."""
    if name.endswith(".lock"):
        data = json.loads(text)  # json.JSONDecodeError is a ValueError
        meta = _table(data.get("_meta"))
        return {"sources": meta.get("sources") or [], "packages": _table(data.get("default")),
                "python": str(_table(meta.get("requires")).get("python_version") or ""), "locked": True}
    try:
        import tomllib
    except ImportError:  # Python 3.10: lockstep's environment has tomli
        import tomli as tomllib

    data = tomllib.loads(text)  # its TOMLDecodeError is a ValueError
    return {"sources": data.get("source") or [], "packages": _table(data.get("packages")),
            "python": str(_table(data.get("requires")).get("python_version") or ""), "locked": False}


def requirement(name: str, spec: Any) -> str:
    """One entry as a requirement line: `"*"` or `"==1.2"`, or a table (`version`, `extras`,
    `markers`, `git`/`ref`, `path`/`editable`, `file`, `hashes`)."""
    if not isinstance(spec, dict):
        version = str(spec).strip()
        return name if version in ("", "*") else f"{name}{version}"
    extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
    marker = f" ; {spec['markers']}" if spec.get("markers") else ""
    if spec.get("git"):
        ref = f"@{spec['ref']}" if spec.get("ref") else ""
        url = str(spec["git"])
        return f"{name}{extras} @ {'' if url.startswith('git+') else 'git+'}{url}{ref}{marker}"
    if spec.get("path"):
        path = Path(str(spec["path"])).as_posix()
        return f"-e {path}" if spec.get("editable") else f"{path}{marker}"
    if spec.get("file"):
        return f"{name}{extras} @ {spec['file']}{marker}"
    version = str(spec.get("version") or "").strip()
    return f"{name}{extras}{'' if version in ('', '*') else version}{marker}"


def requirements(project: dict[str, Any]) -> list[str]:
    sources = [source for source in project["sources"] if isinstance(source, dict) and isinstance(source.get("url"), str)]
    lines = [f"--{'index-url' if i == 0 else 'extra-index-url'} {source['url']}" for i, source in enumerate(sources)]
    packages = project["packages"]
    hashed = project["locked"] and packages and all(
        isinstance(spec, dict) and spec.get("hashes") and re.match(r"^==[^*]+$", str(spec.get("version") or ""))
        for spec in packages.values())
    for name, spec in packages.items():
        line = requirement(name, spec)
        if hashed:
            line += "".join(f" --hash={digest}" for digest in spec["hashes"])
        lines.append(line)
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("requirements", "python"):
        print(__doc__, file=sys.stderr)
        return 2
    project = read(Path(argv[1]))
    if argv[0] == "python":
        if re.fullmatch(r"\d+\.\d+(\.\d+)?", project["python"]):
            print(project["python"])
        return 0
    print("\n".join(requirements(project)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
