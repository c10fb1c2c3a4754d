"""Stage commands written for a developer's environment manager, run in the environment lockstep
installed: `poetry run python train.py`, `uv run python -m pkg.train`, `pipenv run ...`,
`conda run -n ml ...`, `pdm run train` and `hatch run test:train` (scripts the project declares
for PDM or Hatch, or commands), and the project's own console scripts (`[project.scripts]`,
`[tool.poetry.scripts]` in its `pyproject.toml`: `train`, `poetry run train`).

The setup action installs the project's requirements into a virtual environment of its own (from
`pyproject.toml`/`poetry.lock`, `uv.lock`, `Pipfile.lock`, `environment.yml`, ...), which is what the
manager's `run` means: run the command in the project's environment. On a runner there is no Poetry,
pipenv, conda, PDM or Hatch on the PATH (`poetry: not found`), and uv, which is, would build a second
environment in the checkout (`.venv`, a new `uv.lock` written when there is none) and run there,
outside the environment lockstep checks and installs the base's evaluation from.

So each `dvc repro` lockstep runs gets a folder first on its PATH that holds:

- `poetry`, `pipenv`, `conda`, `mamba`, `micromamba`: `X [options] run [options] CMD ARGS` runs
  `CMD ARGS` as it is (the environment's `bin` is on the PATH already); any other subcommand fails
  the stage with what to do (a stage that installs packages would change what CI judged);
- `pdm` and `hatch`, whose `run` may name a script of the project's rather than a command:
  `[tool.pdm.scripts]` (`cmd`, `shell`, `call`, `composite`, their options, `{args}`,
  `pre_`/`post_` scripts), and Hatch's environments' scripts (`[tool.hatch.envs.ENV.scripts]` or
  `hatch.toml`'s `[envs.ENV.scripts]`, a script naming another, `{args:default}`, `env-vars`; an
  environment's own dependencies, which lockstep does not install, are named in a warning). The
  TOML is read here, when the stages' environment is prepared, and what the scripts expand to is
  written to a JSON file beside each shim, which runs lockstep/scriptrun.py with lockstep's own
  Python; their other subcommands fail the stage as the other managers' do;
- the project's console scripts that the environment does not have (lockstep installs the project's
  dependencies, not the project): each imports its entry point from the checkout (the folder of the
  `pyproject.toml` that declares it, or its `src/`), as the installed script would;

and `uv run` is pointed at the same environment (`UV_PROJECT_ENVIRONMENT`, `UV_NO_SYNC`: no sync,
no lock written), as `VIRTUAL_ENV` points any other tool that looks for the active environment.
Nothing here runs the project's code: the TOML is read as data, and the wrappers are written for
the stages to run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
# the managers whose `run` may name a script the project declares: run by lockstep/scriptrun.py
SCRIPT_MANAGERS = ("pdm", "hatch")
_PDM_KINDS = ("cmd", "shell", "call", "composite")

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


def _pdm_options(table: Mapping[str, Any]) -> dict[str, Any]:
    """A PDM script's options (or the shared ones, `_`) that lockstep/scriptrun.py applies."""
    options: dict[str, Any] = {}
    env = table.get("env")
    if isinstance(env, dict):
        options["env"] = {name: value for name, value in env.items() if isinstance(name, str) and isinstance(value, str)}
    env_file = table.get("env_file")
    if isinstance(env_file, str):
        options["env_file"] = {"path": env_file, "override": False}
    elif isinstance(env_file, dict) and isinstance(env_file.get("override"), str):
        options["env_file"] = {"path": env_file["override"], "override": True}
    if isinstance(table.get("working_dir"), str):
        options["working_dir"] = table["working_dir"]
    if table.get("keep_going") is True:
        options["keep_going"] = True
    return options


def _pdm_task(value: object) -> dict[str, Any] | None:
    """A `[tool.pdm.scripts]` entry as {kind, value, options...}, or None when PDM would refuse it."""
    if isinstance(value, str):
        value = {"cmd": value}
    if not isinstance(value, dict):
        return None
    kinds = [kind for kind in _PDM_KINDS if kind in value]
    if len(kinds) != 1:
        return None
    kind, body = kinds[0], value[kinds[0]]
    strings = isinstance(body, list) and all(isinstance(part, str) for part in body)
    if not (strings if kind == "composite" else isinstance(body, str) or (kind == "cmd" and strings)):
        return None
    return {"kind": kind, "value": body, **_pdm_options(value)}


def _pdm_project(pdm: object) -> dict[str, Any]:
    scripts = pdm.get("scripts") if isinstance(pdm, dict) else None
    if not isinstance(scripts, dict):
        return {"scripts": {}, "shared": {}}
    shared = scripts.get("_")
    tasks = {name: task for name, value in scripts.items()
             if isinstance(name, str) and name != "_" and (task := _pdm_task(value)) is not None}
    return {"scripts": tasks, "shared": _pdm_options(shared) if isinstance(shared, dict) else {}}


def _hatch_inherited(name: str, declared: Mapping[str, dict[str, Any]], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """An environment's options with those of its `template` (`default` unless it names another,
    or itself, or is `detached`) under them, as Hatch resolves them: each option taken whole from
    the nearest environment that sets it, but scripts name by name."""
    config = dict(declared.get(name, {}))
    template = name if config.get("detached") is True else config.get("template", "default")
    if not isinstance(template, str) or template == name or template in seen:
        return config
    for key, value in _hatch_inherited(template, declared, (*seen, name)).items():
        if key == "scripts" and isinstance(value, dict) and isinstance(config.get("scripts"), dict):
            config["scripts"] = {**value, **config["scripts"]}
        elif key != "matrix":
            config.setdefault(key, value)
    return config


def _hatch_expand(name: str, scripts: Mapping[str, list[str]], active: tuple[str, ...] = ()) -> list[str] | None:
    """A Hatch script's commands, each one whose first word names another script replaced by that
    script's commands, with the rest of its words after each (and its `- ` before each); None for a
    script that names itself, which Hatch refuses."""
    if name in active:
        return None
    expanded = []
    for command in scripts[name]:
        first, _, args = command.partition(" ")
        allowed_to_fail = first == "-"
        if allowed_to_fail:
            first, _, args = args.partition(" ")
        if first not in scripts:
            expanded.append(command)
            continue
        inner = _hatch_expand(first, scripts, (*active, name))
        if inner is None:
            return None
        for line in inner:
            line = f"{line} {args}" if args else line
            expanded.append(f"- {line}" if allowed_to_fail and not line.startswith("- ") else line)
    return expanded


def _hatch_envs(envs: object) -> dict[str, dict[str, Any]]:
    """Each Hatch environment (and `default`, always there) as lockstep/scriptrun.py runs it: its
    scripts expanded, its `env-vars`, and the dependencies it would install of its own."""
    declared = ({name: config for name, config in envs.items() if isinstance(name, str) and isinstance(config, dict)}
                if isinstance(envs, dict) else {})
    resolved = {}
    for name in sorted({"default", *declared}):
        config = _hatch_inherited(name, declared)
        scripts: dict[str, list[str]] = {}
        for field in ("extra-scripts", "scripts"):  # a script under `scripts` wins
            table = config.get(field)
            for script, commands in (table.items() if isinstance(table, dict) else ()):
                commands = [commands] if isinstance(commands, str) else commands
                if (isinstance(script, str) and " " not in script and isinstance(commands, list)
                        and all(isinstance(command, str) for command in commands)):
                    scripts[script] = commands
        env_vars = config.get("env-vars")
        lists = [value for field in ("dependencies", "extra-dependencies") if isinstance(value := config.get(field), list)]
        resolved[name] = {
            "scripts": {script: lines for script in scripts if (lines := _hatch_expand(script, scripts)) is not None},
            "env_vars": {key: value for key, value in env_vars.items() if isinstance(value, str)} if isinstance(env_vars, dict) else {},
            "dependencies": [dependency for values in lists for dependency in values if isinstance(dependency, str)],
        }
    return resolved


def manager_scripts(project: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """What `pdm run` and `hatch run` may name, read as data from each `pyproject.toml` (and the
    `hatch.toml` beside it, whose top-level keys win over `[tool.hatch]`) from the project's folder
    up, by tool and then by the folder of each file: PDM's scripts and shared options, Hatch's
    environments."""
    found: dict[str, dict[str, dict[str, Any]]] = {tool: {} for tool in SCRIPT_MANAGERS}
    for pyproject in _pyprojects(project):
        tool = _load(pyproject).get("tool")
        tool = tool if isinstance(tool, dict) else {}
        hatch = tool.get("hatch")
        hatch = {**(hatch if isinstance(hatch, dict) else {}), **_load(pyproject.with_name("hatch.toml"))}
        found["pdm"][str(pyproject.parent)] = _pdm_project(tool.get("pdm"))
        found["hatch"][str(pyproject.parent)] = {"envs": _hatch_envs(hatch.get("envs"))}
    return found


def _runner_shim(tool: str, config: Path) -> str:
    runner = Path(__file__).with_name("scriptrun.py")
    return (f"#!/bin/sh\n# lockstep (envrun.py): `{tool} run CMD` in a stage runs CMD, or the project's {tool} script CMD "
            f"as {config.name} holds it, in the environment lockstep installed (lockstep/scriptrun.py)\n"
            f"exec {shlex.quote(sys.executable)} -I {shlex.quote(str(runner))} {shlex.quote(str(config))} \"$@\"\n")


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
    managers' `run` (PDM's and Hatch's with the project's scripts, in JSON files beside them) and
    the project's console scripts the environment lacks, and `uv run` and
    `VIRTUAL_ENV` pointed at the environment of the PATH's `python` (unless env says otherwise)."""
    result = dict(env)
    folder.mkdir(parents=True, exist_ok=True)
    path = result.get("PATH", "")
    for tool in MANAGERS:
        _write(folder / tool, _manager_shim(tool))
    for tool, projects in manager_scripts(Path(project)).items():
        config = folder / f"{tool}-scripts.json"
        config.write_text(json.dumps({"tool": tool, "projects": projects}, indent=1), encoding="utf-8")
        _write(folder / tool, _runner_shim(tool, config))
    for name, (module, attribute, roots) in sorted(project_scripts(Path(project)).items()):
        if name not in (*MANAGERS, *SCRIPT_MANAGERS) and shutil.which(name, path=path) is None:
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
