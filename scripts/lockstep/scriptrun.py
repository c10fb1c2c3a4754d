"""`pdm run` and `hatch run` in a stage's command: the half of lockstep/envrun.py that runs when the
stage does.

`envrun.prepare()` reads the scripts the project's `pyproject.toml` (and `hatch.toml`) declare, as
data, and writes what they expand to into a JSON file beside its `pdm` and `hatch` shims. Each shim
runs this file with lockstep's own Python, isolated (`python -I scriptrun.py CONFIG ARGS...`: the
standard library only, no TOML read, nothing of the project imported), which takes the manager's
options as the manager would, finds the project (the nearest folder above the stage's with a
`pyproject.toml`, or PDM's `-p DIR`), and runs in the stage's environment either the script the
command names or, when it names none, the command itself:

- PDM (`[tool.pdm.scripts]`): `cmd` (a string split as a shell would, or a list, run without a
  shell), `shell`, `call` (`pkg.module:func` or `pkg.module:func('dev')`, imported from the
  project's folder or its `src/`, as the installed project would be), `composite` (scripts or
  commands in order, stopping at the first failure unless `keep_going`); the options `env`,
  `env_file`, `working_dir`, and the shared ones under `_`; the `{args}` placeholder (else the
  arguments are appended); `pre_NAME`/`post_NAME`, and `--skip` (or `PDM_SKIP_HOOKS`);
- Hatch (`[tool.hatch.envs.ENV.scripts]`, `hatch run [ENV:]CMD`, `-e ENV`, `HATCH_ENV`): each command
  run by a shell in the project's folder, the environment's `env-vars` set, its context fields
  (`{args}`, `{args:default}`, `{root}`, `{env:NAME:default}`, ...) filled, a command starting with
  `- ` allowed to fail. An environment's own dependencies are not installed (lockstep installs the
  project's requirements): a warning names them.

A manager's other commands (`pdm install`, `hatch env create`) fail the stage, as the other
managers' shims do.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

# each manager's options that take a value (before or after `run`): skipped with their value
PDM_VALUED = ("-c", "--config", "-p", "--project", "-k", "--skip", "--venv")
HATCH_VALUED = ("-e", "--env", "-p", "--project", "--data-dir", "--cache-dir", "--config")
HATCH_ENV_RUN_VALUED = ("-e", "--env", "-i", "--include", "-x", "--exclude", "-f", "--filter")

_ARGS = re.compile(r"\{args(?::(?P<default>[^}]*))?\}")
_VARIABLE = re.compile(r"\$\{(\w+)\}")
_CALL = re.compile(r"\s*([A-Za-z_][\w.]*)\s*:\s*([A-Za-z_][\w.]*)\s*(\(.*\))?\s*", re.DOTALL)


class ScriptError(Exception):
    """A script the stage's command names cannot run as declared: the message says why."""


def _refused(tool: str, argv: list[str]) -> int:
    print(f"lockstep: `{shlex.join([tool, *argv])}` in a stage's command: lockstep runs the stages in the environment it "
          f"installed from the project's requirements, and provides only `{tool} run CMD` (CMD, or the project's {tool} "
          "script CMD, runs in that environment). Remove the call from the stage's cmd, or list what it installs in the "
          "requirements", file=sys.stderr)
    return 2


def _options(argv: list[str], valued: tuple[str, ...], subcommand: str | None) -> tuple[dict[str, list[str]], bool, list[str]]:
    """The options before the command (each one's values, by name), whether `subcommand` came
    among them, and the command with its arguments."""
    options: dict[str, list[str]] = {}
    seen = subcommand is None
    rest = list(argv)
    while rest:
        arg = rest[0]
        if arg == "--":
            rest.pop(0)
            break
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
            options.setdefault(name, []).append(value)
            rest.pop(0)
        elif arg in valued:
            options.setdefault(arg, []).append(rest[1] if len(rest) > 1 else "")
            del rest[:2]
        elif arg.startswith("-") and arg != "-":
            options.setdefault(arg, []).append("")
            rest.pop(0)
        elif not seen and arg == subcommand:
            seen = True
            rest.pop(0)
        else:
            break
    return options, seen, rest


def _last(options: dict[str, list[str]], *names: str) -> str | None:
    values = [value for name in names for value in options.get(name, [])]
    return values[-1] if values else None


def _project_root(start: Path) -> Path | None:
    """The folder the manager takes for the project's: the nearest one with a `pyproject.toml`."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def _code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _call(argv: list[str], *, env: dict[str, str], cwd: Path | None, tool: str) -> int:
    try:
        return _code(subprocess.call(argv, env=env, cwd=cwd))  # noqa: S603 - the stage's own command
    except FileNotFoundError:
        print(f"lockstep: {tool} run: {argv[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"lockstep: {tool} run: {argv[0]}: permission denied", file=sys.stderr)
        return 126


def _shell(command: str, *, env: dict[str, str], cwd: Path | None) -> int:
    return _code(subprocess.call(command, shell=True, env=env, cwd=cwd))  # noqa: S602 - the project's script, as the manager runs it


# -- PDM ---------------------------------------------------------------------------------------

def _fill(text: str, args: list[str], joined: str) -> tuple[str, bool]:
    """`text` with each `{args}`/`{args:default}` replaced (by `joined`, or the default when there
    are no arguments), and whether it had one."""
    found = False

    def replace(match: re.Match[str]) -> str:
        nonlocal found
        found = True
        return joined if args else (match.group("default") or "")

    return _ARGS.sub(replace, text), found


def _dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


class PdmScripts:
    """`pdm run NAME ARGS` for one project: its scripts, shared options and hooks."""

    def __init__(self, project: dict[str, Any], root: Path | None, skip: set[str]):
        self.scripts: dict[str, dict[str, Any]] = project.get("scripts", {})
        self.shared: dict[str, Any] = project.get("shared", {})
        self.root = root
        self.skip = skip

    def _skipped(self, name: str) -> bool:
        return (name in self.skip or ":all" in self.skip or (name.startswith("pre_") and ":pre" in self.skip)
                or (name.startswith("post_") and ":post" in self.skip))

    def run(self, command: str, args: list[str], outer: dict[str, Any] | None = None) -> int:
        """A script with its pre_ and post_ scripts (which get no arguments), or the command."""
        options = self._options({}, outer or {})
        if command not in self.scripts:
            argv = ["python", command, *args] if command.endswith(".py") and Path(command).is_file() else [command, *args]
            return _call(argv, env=self._environ(options), cwd=self._cwd(options), tool="pdm")
        if self._skipped(command):
            return 0
        for name, arguments in ((f"pre_{command}", []), (command, args), (f"post_{command}", [])):
            if name != command and (name not in self.scripts or self._skipped(name)):
                continue
            code = self._task(name, arguments, outer or {})
            if code:
                return code
        return 0

    def _options(self, task: dict[str, Any], outer: dict[str, Any]) -> dict[str, Any]:
        """The shared options (`_`), the task's over them, and a composite's (which calls it) over both."""
        return {
            "env": {**self.shared.get("env", {}), **task.get("env", {}), **outer.get("env", {})},
            "env_file": outer.get("env_file") or task.get("env_file") or self.shared.get("env_file"),
            "working_dir": task.get("working_dir") or outer.get("working_dir") or self.shared.get("working_dir"),
        }

    def _environ(self, options: dict[str, Any]) -> dict[str, str]:
        environ = dict(os.environ)
        if self.root is not None:
            environ["PDM_PROJECT_ROOT"] = str(self.root)
        env_file = options.get("env_file")
        if env_file:
            for name, value in _dotenv((self.root or Path.cwd()) / env_file["path"]).items():
                if env_file["override"] or name not in environ:
                    environ[name] = value
        for name, value in options["env"].items():
            environ[name] = _VARIABLE.sub(lambda match: environ.get(match.group(1), match.group(0)), value)
        return environ

    def _cwd(self, options: dict[str, Any]) -> Path | None:
        working_dir = options.get("working_dir")
        return (self.root or Path.cwd()) / working_dir if working_dir else None

    def _task(self, name: str, args: list[str], outer: dict[str, Any]) -> int:
        task = self.scripts[name]
        options = self._options(task, outer)
        environ, cwd = self._environ(options), self._cwd(options)
        kind, value = task["kind"], task["value"]
        if kind == "cmd":
            return _call(self._cmd(value, args, environ), env=environ, cwd=cwd, tool="pdm")
        if kind == "shell":
            command, found = _fill(value.replace("{pdm}", "pdm"), args, shlex.join(args))
            return _shell(command if found or not args else f"{command} {shlex.join(args)}", env=environ, cwd=cwd)
        if kind == "call":
            return _call(["python", "-c", self._call_code(name, value), *args], env=environ, cwd=cwd, tool="pdm")
        # a composite's own options reach the scripts it calls, over theirs (the shared ones do not)
        return self._composite(task, value, args, {
            "env": {**task.get("env", {}), **outer.get("env", {})},
            "env_file": outer.get("env_file") or task.get("env_file"),
            "working_dir": task.get("working_dir") or outer.get("working_dir"),
        })

    def _cmd(self, value: str | list[str], args: list[str], environ: dict[str, str]) -> list[str]:
        def expand(text: str) -> str:  # only `${NAME}` in a cmd, as PDM does
            return _VARIABLE.sub(lambda match: environ.get(match.group(1), match.group(0)), text.replace("{pdm}", "pdm"))

        if isinstance(value, str):
            command, found = _fill(expand(value), args, shlex.join(args))
            argv = shlex.split(command)
        else:
            argv, found = [], False
            for part in value:
                whole = _ARGS.fullmatch(part)
                if whole:  # an element that is the placeholder: the arguments as they are
                    found = True
                    argv += args if args else shlex.split(whole.group("default") or "")
                    continue
                text, hit = _fill(expand(part), args, " ".join(args))
                found = found or hit
                argv.append(text)
        argv = argv if found else [*argv, *args]
        if not argv:
            raise ScriptError("its command is empty")
        return argv

    def _call_code(self, name: str, value: str) -> str:
        call = _CALL.fullmatch(value)
        if call is None:
            raise ScriptError(f"`call = {value!r}` is not `pkg.module:func` or `pkg.module:func(...)`")
        module, attribute, arguments = call.groups()
        folder = self.root or Path.cwd()
        roots = [str(path) for path in (folder, folder / "src") if path.is_dir()]
        return (f"import sys; sys.path[:0] = {roots!r}; from importlib import import_module; target = import_module({module!r})\n"
                f"for part in {attribute.split('.')!r}: target = getattr(target, part)\n"
                f"sys.exit(target{arguments or '()'})")

    def _composite(self, task: dict[str, Any], items: list[str], args: list[str], passed: dict[str, Any]) -> int:
        placeholder = any(_ARGS.search(item) for item in items)
        failed = 0
        for item in items:
            if placeholder:
                item = _fill(item, args, shlex.join(args))[0]
            elif args:
                item = f"{item} {shlex.join(args)}"
            words = shlex.split(item.replace("{pdm}", "pdm"))
            if not words:
                continue
            code = self.run(words[0], words[1:], outer=passed)
            if code:
                failed = code
                if not task.get("keep_going"):
                    return code
        return failed


def _pdm(argv: list[str], config: dict[str, Any]) -> int:
    options, ran, rest = _options(argv, PDM_VALUED, "run")
    if not ran:
        return _refused("pdm", argv)
    if not rest:
        print("lockstep: `pdm run` without a command in a stage's command: name the script or command to run", file=sys.stderr)
        return 2
    project = _last(options, "-p", "--project")
    root = Path(project).resolve() if project else _project_root(Path.cwd().resolve())
    skip = _last(options, "-k", "--skip")
    skip = os.environ.get("PDM_SKIP_HOOKS", "") if skip is None else skip
    scripts = PdmScripts(config["projects"].get(str(root), {}), root, {name.strip() for name in skip.split(",") if name.strip()})
    try:
        return scripts.run(rest[0], rest[1:])
    except (ScriptError, ValueError) as error:  # ValueError: shlex on unbalanced quotes
        print(f"lockstep: pdm run {rest[0]}: the script cannot run: {error}", file=sys.stderr)
        return 2


# -- Hatch -------------------------------------------------------------------------------------

def _hatch_format(text: str, *, args: str | None, root: Path, env_name: str) -> str:
    """Hatch's context formatting: `{args}`, `{args:default}`, `{root}` (`:parent`, `:real`,
    `:uri`), `{home}`, `{env:NAME}`, `{env:NAME:default}`, `{/}`, `{;}`, `{env_name}`,
    `{env_type}`, `{verbosity}`, `{matrix:NAME:default}`; `{{` and `}}` are braces."""
    parts = []
    for literal, field, spec, _conversion in string.Formatter().parse(text):
        parts.append(literal)
        if field is None:
            continue
        spec = spec or ""
        if field == "args":
            parts.append(args if args is not None else spec)
        elif field == "root":
            path = root
            for modifier in filter(None, spec.split(":")):
                path = path.parent if modifier == "parent" else path.resolve() if modifier == "real" else path
            parts.append(path.as_uri() if spec.split(":")[-1] == "uri" else str(path))
        elif field == "home":
            parts.append(os.path.expanduser("~"))
        elif field in ("env", "matrix"):
            name, separator, default = spec.partition(":")
            if field == "env" and name in os.environ:
                parts.append(os.environ[name])
            elif separator:
                parts.append(default)
            else:
                raise ScriptError(f"`{{{field}:{spec}}}` has no value here and no default")
        elif field in ("/", ";"):
            parts.append(os.sep if field == "/" else os.pathsep)
        elif field in ("env_name", "env_type"):
            parts.append(env_name if field == "env_name" else "virtual")
        elif field == "verbosity":
            level = int(spec.partition(":")[2] or 0) if spec.startswith("flag") else 0
            parts.append(("-v" * level if level > 0 else "-q" * -level) if spec.startswith("flag") else str(level))
        else:
            raise ScriptError(f"`{{{field}}}` is not one of Hatch's context fields (write `{{{{` and `}}}}` for braces)")
    return "".join(parts)


def _hatch(argv: list[str], config: dict[str, Any]) -> int:
    options, _, rest = _options(argv, HATCH_VALUED, None)
    env_names = [_last(options, "-e", "--env") or os.environ.get("HATCH_ENV") or "default"]
    if rest[:1] == ["run"]:
        args = rest[1:]
        args = args[1:] if args[:1] == ["--"] else args
        if args and ":" in args[0]:
            env_name, _, command = args[0].partition(":")
            env_names, args = [env_name], ([command] if command else []) + args[1:]
    elif rest[:2] == ["env", "run"]:
        run_options, _, args = _options(rest[2:], HATCH_ENV_RUN_VALUED, None)
        env_names = [name for flag in ("-e", "--env") for name in run_options.get(flag, [])] or env_names
    else:
        return _refused("hatch", argv)
    if not args:
        print("lockstep: `hatch run` without a command in a stage's command: name the script or command to run", file=sys.stderr)
        return 2
    root = _project_root(Path.cwd().resolve())
    envs: dict[str, dict[str, Any]] = config["projects"].get(str(root), {}).get("envs", {})
    for env_name in env_names:
        code = _hatch_run(args, env_name, envs, root or Path.cwd())
        if code:
            return code
    return 0


def _hatch_run(args: list[str], env_name: str, envs: dict[str, dict[str, Any]], root: Path) -> int:
    # a matrix's generated environment (`test.py3.11-42`) has its root environment's scripts
    env = envs.get(env_name) or envs.get(env_name.split(".")[0]) or ({} if env_name == "default" else None)
    if env is None:
        print(f"lockstep: hatch run: environment `{env_name}` is not defined in the project's pyproject.toml or hatch.toml "
              f"(it has {', '.join(f'`{name}`' for name in sorted(envs)) or 'none'})", file=sys.stderr)
        return 2
    dependencies = env.get("dependencies", [])
    if dependencies:
        print(f"lockstep: hatch environment `{env_name}` declares dependencies that lockstep does not install "
              f"({', '.join(dependencies)}): the stage runs in the environment of the project's requirements, so list "
              "there what it needs", file=sys.stderr)
    command = shlex.join(args)
    name, _, rest = command.partition(" ")
    scripts: dict[str, list[str]] = env.get("scripts", {})
    try:
        if name in scripts:
            extra = _hatch_format(rest, args=None, root=root, env_name=env_name) if rest else None
            commands = [_hatch_format(line, args=extra, root=root, env_name=env_name).strip() for line in scripts[name]]
        else:
            commands = [_hatch_format(command, args=rest or None, root=root, env_name=env_name).strip()]
        environ = {**os.environ, **{key: _hatch_format(value, args=None, root=root, env_name=env_name)
                                    for key, value in env.get("env_vars", {}).items()}}
    except (ScriptError, ValueError) as error:  # ValueError: a brace Python's formatter cannot parse
        print(f"lockstep: hatch run {name}: the command cannot be formatted as Hatch does: {error}", file=sys.stderr)
        return 2
    for line in commands:
        allowed_to_fail = line.startswith("- ")
        code = _shell(line[2:] if allowed_to_fail else line, env=environ, cwd=root)
        if code and not allowed_to_fail:
            return code
    return 0


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    return (_pdm if config["tool"] == "pdm" else _hatch)(argv[1:], config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
