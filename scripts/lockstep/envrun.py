"""Stage commands written for a developer's environment manager, run in the environment lockstep
installed: `poetry run python train.py`, `uv run python -m pkg.train`, `pipenv run ...`,
`conda run -n ml ...`, and the project's own console scripts (`[project.scripts]`,
`[tool.poetry.scripts]` in its `pyproject.toml`: `train`, `poetry run train`).

The setup action installs the project's requirements into a virtual environment of its own (from
`pyproject.toml`/`poetry.lock`, `uv.lock`, `Pipfile.lock`, `environment.yml`, ...), which is what the
manager's `run` means: run the command in the project's environment. On a runner there is no Poetry,
pipenv or conda on the PATH (`poetry: not found`), and uv, which is, would build a second
environment in the checkout (`.venv`, a new `uv.lock` written when there is none) and run there,
outside the environment lockstep checks and installs the base's evaluation from.

So each `dvc repro` lockstep runs gets a folder first on its PATH that holds:

- `poetry`, `pipenv`, `conda`, `mamba`, `micromamba`: `X [options] run [options] CMD ARGS` runs
  `CMD ARGS` as it is (the environment's `bin` is on the PATH already); any other subcommand fails
  the stage with what to do (a stage that installs packages would change what CI judged);
- the project's console scripts that the environment does not have (lockstep installs the project's
  dependencies, not the project): each imports its entry point from the checkout (the folder of the
  `pyproject.toml` that declares it, or its `src/`), as the installed script would;

and `uv run` is pointed at the same environment (`UV_PROJECT_ENVIRONMENT`, `UV_NO_SYNC`: no sync,
no lock written), as `VIRTUAL_ENV` points any other tool that looks for the active environment.
Nothing here runs the project's code: the TOML is read as data, and the wrappers are written for
the stages to run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

# The environment managers whose `run` a stage may use, and each one's options that take a value
# (before or after `run`): those are skipped with their value; a directory option is followed.
MANAGERS: dict[str, tuple[str, ...]] = {
    "poetry": ("-P", "--project"),
    "pipenv": ("--python", "--pypi-mirror"),
    "conda": ("-n", "--name", "-p", "--prefix"),
    "mamba": ("-n", "--name", "-p", "--prefix"),
    "micromamba": ("-n", "--name", "-p", "--prefix", "-r", "--root-prefix"),
}
_DIRECTORY_OPTIONS = ("-C", "--directory", "--cwd")  # poetry's -C/--directory, conda's --cwd

_SCRIPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ENTRY_POINT = re.compile(r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*:\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*")


def _manager_shim(tool: str) -> str:
    valued = " | ".join(MANAGERS[tool])
    directory = " | ".join(_DIRECTORY_OPTIONS)
    return f"""#!/bin/sh
# lockstep (envrun.py): `{tool} run CMD` in a stage runs CMD in the environment lockstep installed
ran=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    {directory}) cd "$2" || exit 2; shift 2 ;;
    --directory=* | --cwd=*) cd "${{1#*=}}" || exit 2; shift ;;
    {valued}) shift 2 ;;
    -*) shift ;;
    run) if [ -n "$ran" ]; then break; fi; ran=1; shift ;;
    *) break ;;
  esac
done
if [ -z "$ran" ] || [ "$#" -eq 0 ]; then
  echo "lockstep: \\`{tool} $*\\` in a stage's command: lockstep runs the stages in the environment it installed" \\
    "from the project's requirements, and provides only \\`{tool} run CMD\\` (CMD runs in that environment)." \\
    "Remove the call from the stage's cmd, or list what it installs in the requirements" >&2
  exit 2
fi
exec "$@"
"""


def _venv(env: Mapping[str, str]) -> Path | None:
    """The virtual environment whose `python` comes first on env's PATH (not resolved: a venv's
    python links to the interpreter it was made from), or None."""
    python = shutil.which("python", path=env.get("PATH", ""))
    if python is None:
        return None
    venv = Path(python).parent.parent
    return venv if (venv / "pyvenv.cfg").is_file() else None


def _pyprojects(project: Path) -> list[Path]:
    """The `pyproject.toml` of the project's folder and of the folders above it, up to the
    repository's root (a monorepo's project may be declared at the root), nearest first."""
    found = []
    folder = project.resolve()
    while True:
        if (folder / "pyproject.toml").is_file():
            found.append(folder / "pyproject.toml")
        if (folder / ".git").exists() or folder.parent == folder:
            return found
        folder = folder.parent


def _load(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: lockstep's environment has tomli
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def project_scripts(project: Path) -> dict[str, tuple[str, str, list[str]]]:
    """The console scripts the project's `pyproject.toml` files declare, by name: (module,
    attribute, the folders to import the module from), for those whose module is in the checkout.
    The nearest file's declaration wins."""
    scripts: dict[str, tuple[str, str, list[str]]] = {}
    for pyproject in _pyprojects(project):
        data = _load(pyproject)
        project_table = data.get("project")
        tool = data.get("tool")
        poetry = tool.get("poetry") if isinstance(tool, dict) else None
        declared: dict[str, object] = {}
        for table in (poetry.get("scripts") if isinstance(poetry, dict) else None,
                      project_table.get("scripts") if isinstance(project_table, dict) else None):
            if isinstance(table, dict):
                declared.update(table)
        for name, value in declared.items():
            if isinstance(value, dict):  # Poetry's table form: {reference = "mod:func", type = "console"} or {callable = ...}
                if value.get("type", "console") != "console":
                    continue
                value = value.get("reference") or value.get("callable")
            if not isinstance(name, str) or not isinstance(value, str) or name in scripts:
                continue
            entry = _ENTRY_POINT.fullmatch(value)
            if not _SCRIPT_NAME.fullmatch(name) or entry is None:
                continue
            module, attribute = entry.groups()
            top = module.split(".")[0]
            roots = [str(folder) for folder in (pyproject.parent, pyproject.parent / "src")
                     if (folder / top / "__init__.py").is_file() or (folder / top).is_dir() or (folder / f"{top}.py").is_file()]
            if roots:
                scripts[name] = (module, attribute, roots)
    return scripts


def _script_wrapper(name: str, module: str, attribute: str, roots: list[str]) -> str:
    code = (f"import sys; sys.path[:0] = {roots!r}; sys.argv[0] = {name!r}; "
            f"from importlib import import_module; target = import_module({module!r})\n"
            f"for part in {attribute.split('.')!r}: target = getattr(target, part)\n"
            "sys.exit(target())")
    return (f"#!/bin/sh\n# lockstep (envrun.py): the project's console script `{name}` ({module}:{attribute}), "
            "which lockstep does not install: imported from the checkout\n"
            f"exec python -c {shlex.quote(code)} \"$@\"\n")


def prepare(env: Mapping[str, str], project: str | Path, folder: Path) -> dict[str, str]:
    """The stages' environment: `env`, with `folder` (written here) first on its PATH, holding the
    managers' `run` and the project's console scripts the environment lacks, and `uv run` and
    `VIRTUAL_ENV` pointed at the environment of the PATH's `python` (unless env says otherwise)."""
    result = dict(env)
    folder.mkdir(parents=True, exist_ok=True)
    path = result.get("PATH", "")
    for tool in MANAGERS:
        _write(folder / tool, _manager_shim(tool))
    for name, (module, attribute, roots) in sorted(project_scripts(Path(project)).items()):
        if name not in MANAGERS and shutil.which(name, path=path) is None:
            _write(folder / name, _script_wrapper(name, module, attribute, roots))
    venv = _venv(result)
    if venv is not None:
        result.setdefault("VIRTUAL_ENV", str(venv))
        result.setdefault("UV_PROJECT_ENVIRONMENT", str(venv))
        result.setdefault("UV_NO_SYNC", "1")
    result["PATH"] = f"{folder}{os.pathsep}{path}" if path else str(folder)
    return result


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
