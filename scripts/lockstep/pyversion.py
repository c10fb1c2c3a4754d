"""Which Python a project asks for, for the setup action when the `python-version` input does not
say: in its pyproject.toml (`[project] requires-python`, or Poetry's `[tool.poetry.dependencies]
python`), then in the files other tools read it from: a `runtime.txt` (Heroku's `python-3.10.12`),
a `.tool-versions` (asdf's `python 3.12.1`), a Dockerfile's `FROM python:3.12-slim`, and a setup.py's
or setup.cfg's `python_requires` (read as text, never run). Run by the runner's own python3 before
any environment exists, so it uses the standard library only, and prints nothing when it cannot tell.

    python3 -m lockstep.pyversion PYPROJECT [PYPROJECT ...]   prints e.g. 3.12
    python3 -m lockstep.pyversion find FOLDER [FOLDER ...]    prints the version, a tab, and the file,
        line and words that asked for it (3.10.12, runtime.txt:1: `python-3.10.12`); each kind of
        file is looked for in each folder in turn (the project's, then the repository's root). A
        pinned version below 3.10 in a runtime.txt, .tool-versions or Dockerfile is set aside, with
        a warning on stderr; a specifier only such a version meets is printed, for the setup to
        fail with the file and line that asked.
"""

from __future__ import annotations

import configparser
import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import gha  # the standard library's only, as this module

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


@dataclass(frozen=True)
class Asked:
    """What one file says about the Python: `version` is the version it names (`pinned`), or the
    runner release its specifier gets ("" when none is accepted or it cannot be read)."""

    path: str
    line: int
    said: str  # the line as written
    version: str
    pinned: bool

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}: `{self.said}`"

    @property
    def too_old(self) -> bool:
        """Below 3.10, which lockstep (DVC, MLflow) needs."""
        return bool(re.match(r"([0-2]|3\.[0-9])(\.|$)", self.version))


_VERSION = r"([0-9]+\.[0-9]+(?:\.[0-9]+)?)"


def _line(text: str, offset: int) -> tuple[int, str]:
    """The number (from 1) and the text, stripped, of the line `offset` is on."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text.count("\n", 0, offset) + 1, text[start:None if end < 0 else end].strip()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # absent, a folder, unreadable
        return None


def _specified(path: Path, text: str, offset: int, spec: str) -> Asked:
    number, said = _line(text, offset)
    return Asked(str(path), number, said, choose(spec) or "", pinned=False)


def read_pyproject(path: Path) -> Asked | None:
    """pyproject.toml's `requires-python` (or Poetry's `python`), as the runner release it gets."""
    text = _read(path)
    spec = requested(text) if text is not None else None
    if text is None or not spec:
        return None
    found = re.search(r"^\s*(requires-python|python)\s*=", text, re.M)
    return _specified(path, text, found.start() if found else 0, spec)


def read_runtime_txt(path: Path) -> Asked | None:
    """Heroku's runtime.txt: `python-3.10.12` (or `python-3.10`) on its first line."""
    text = _read(path)
    found = re.match(rf"\s*python-{_VERSION}\s*(\n|$)", text or "")
    if text is None or not found:
        return None
    number, said = _line(text, found.start(1))
    return Asked(str(path), number, said, found.group(1), pinned=True)


def read_tool_versions(path: Path) -> Asked | None:
    """asdf's (and mise's) .tool-versions: `python 3.12.1 3.11.7`, the first version listed (asdf's
    first choice); nothing when that is no CPython version (`system`, `miniconda3-4.7.12`)."""
    text = _read(path)
    found = re.search(r"^[ \t]*python[ \t]+(\S+)", text or "", re.M)
    if text is None or not found or not re.fullmatch(_VERSION, found.group(1)):
        return None
    number, said = _line(text, found.start())
    return Asked(str(path), number, said, found.group(1), pinned=True)


def read_dockerfile(path: Path) -> Asked | None:
    """The first `FROM` of an official Python image that names a version: `FROM python:3.12-slim`,
    `FROM --platform=linux/amd64 python:3.10.4 AS build`, `FROM docker.io/library/python:3.11`,
    `ARG PY=3.11` then `FROM python:${PY}-slim`. Other images (`nvidia/cuda`, a stage's name) and
    tags without a version (`python:latest`) say nothing."""
    text = _read(path)
    if text is None:
        return None
    args: dict[str, str] = {}
    for found in re.finditer(r"^[ \t]*(ARG|FROM)[ \t]+((?:[^\n]*\\\n)*[^\n]*)", text, re.M | re.I):
        words = re.sub(r"\\\n", " ", found.group(2)).split()
        if found.group(1).upper() == "ARG":
            for word in words:
                name, _, value = word.partition("=")
                args.setdefault(name, value.strip("\"'"))
            continue
        image = next((word for word in words if not word.startswith("--")), "")
        image = re.sub(r"\$\{?(\w+)(?::-([^}]*))?\}?", lambda m: args.get(m.group(1)) or m.group(2) or "", image)
        image = image.split("@", 1)[0]  # a digest
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        version = re.match(rf"{_VERSION}(?![0-9])", tag)
        if name.split("/")[-1].lower() == "python" and version:
            number, said = _line(text, found.start())
            return Asked(str(path), number, said, version.group(1), pinned=True)
    return None


def read_setup_py(path: Path) -> Asked | None:
    """setup.py's `python_requires="..."`, read as text (the file is never run)."""
    text = _read(path)
    found = re.search(r"""\bpython_requires\s*=\s*(['"])(.*?)\1""", text or "")
    if text is None or not found:
        return None
    return _specified(path, text, found.start(), found.group(2))


def read_setup_cfg(path: Path) -> Asked | None:
    """setup.cfg's `[options] python_requires`."""
    text = _read(path)
    if text is None:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    spec = parser.get("options", "python_requires", fallback="").strip()
    if not spec:
        return None
    found = re.search(r"^[ \t]*python_requires[ \t]*[=:]", text, re.M)
    return _specified(path, text, found.start() if found else 0, spec)


# the files read after the existing ones (.python-version, a conda environment, a Pipfile), in order
READERS = (("pyproject.toml", read_pyproject), ("runtime.txt", read_runtime_txt), (".tool-versions", read_tool_versions),
           ("Dockerfile", read_dockerfile), ("setup.py", read_setup_py), ("setup.cfg", read_setup_cfg))


def find(folders: list[Path]) -> tuple[Asked | None, list[Asked]]:
    """What the first file that says (each kind in READERS, in each folder in turn) asks for, and the
    pinned versions below 3.10 set aside on the way (a runtime.txt, .tool-versions or Dockerfile
    says where the code runs elsewhere, not where its stages must: the default runs them instead).
    A specifier ends the search, even one no runner release meets (version "")."""
    set_aside: list[Asked] = []
    unique = list(dict.fromkeys(folders))
    for name, reader in READERS:
        for folder in unique:
            asked = reader(folder / name)
            if asked is None:
                continue
            if asked.pinned and asked.too_old:
                set_aside.append(asked)
                continue
            return asked, set_aside
    return None, set_aside


def main(argv: list[str]) -> int:
    if argv[:1] == ["find"]:
        asked, set_aside = find([Path(name) for name in argv[1:]])
        if asked and asked.too_old:
            set_aside = []  # the setup fails, naming the file that asked
        instead = f"Python {asked.version}, which {asked.where} asks for" if asked and asked.version else f"Python {DEFAULT}, the default"
        for old in set_aside:
            with contextlib.redirect_stdout(sys.stderr):  # stdout says the version
                gha.warning(f"{old.where} asks for Python {old.version}, and lockstep needs 3.10 or newer: the stages run on "
                            f"{instead}. If they need {old.version}, the requirements pinned to releases that predate 3.10 "
                            "will not install: raise them, and set the `python-version` input to say which Python the stages "
                            "run on", file=old.path, line=old.line, title="lockstep setup")
        if asked and asked.version:
            print(f"{asked.version}\t{asked.where}")
        return 0
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
