"""The project's environment, which the setup action may still be installing in the background
while lockstep's first checks run (`project-in-background`): wait for it before running any of
the project's code."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from . import gha, procenv
from .errors import InputError, MlflowError

_ready: set[str] = set()


def wait_until_installed(environ: Mapping[str, str] = os.environ, *, timeout: float = 3600.0, poll: float = 0.05) -> None:
    """Return once the background install (LOCKSTEP_PROJECT_ENV_STATUS names the file its exit
    code lands in) has finished; raise InputError (exit 2) with its log when it failed."""
    status = environ.get("LOCKSTEP_PROJECT_ENV_STATUS")
    if not status or status in _ready:
        return
    path = Path(status)
    log = path.with_name("project-install.log")
    started = time.monotonic()
    while not path.is_file():
        if not _installing(path.with_name("project.pid")) and not path.is_file():
            raise InputError(f"the install of the project's requirements stopped without finishing ({log})",
                             hint="its process was ended from outside (out of memory, or the runner); re-run the job")
        if time.monotonic() - started > timeout:
            raise InputError(f"the project's requirements were still installing after {timeout:.0f} s ({log})",
                             hint="the install's progress is in that log; check the requirements for a package that builds for long")
        time.sleep(poll)
    waited = time.monotonic() - started
    code = path.read_text().strip()
    try:
        said = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        said = ""
    with gha.group(f"project environment (installed in the background, waited {waited:.1f} s)"):
        gha.info(said.rstrip() or "(nothing printed)")  # info() makes workflow commands in it inert
    if code != "0":
        last = " | ".join(line.strip() for line in said.splitlines()[-5:] if line.strip())[-1500:]
        version = _python_version(path.with_name("project") / "pyvenv.cfg")
        cause = no_wheel(said, version)
        python = (f"; it was installed for Python {version} (the setup's `python-version` input, else `.python-version`, else "
                  "what the project's files ask for: a conda environment.yml, a Pipfile, pyproject.toml's `requires-python`, "
                  "runtime.txt, .tool-versions, a Dockerfile's `FROM python:…`, `python_requires`; else 3.11)") if version else ""
        python += (f": {_fix(version)}" if cause else
                   ": a package pinned to a release that has no wheel for that Python builds from source, or cannot be installed"
                   if version else "")
        raise InputError(f"the project's requirements did not install (exit {code or '?'}): {cause or last}",
                         hint="the whole install log is in the group above; fix the requirements file or the `requirements` "
                              f"input{python}")
    _ready.add(status)


# uv's words when a pinned release has nothing for this Python: no wheel with its tags (and no
# source to build), a Requires-Python that leaves it out, or a build from source (what a release
# without a wheel for it gets) that failed
_NO_WHEEL = re.compile(r"\b([A-Za-z0-9][\w.-]*==[\w.+!-]*\w) has no wheels with a matching Python (?:ABI|version|implementation) tag")
_WHEEL_TAGS = re.compile(r"wheels for `([\w.-]+)` \(v([\w.+!-]+)\) with the following Python (?:ABI |implementation )?tags?: "
                         r"((?:`[\w.]+`(?:, )?)+)")
_REQUIRES_PYTHON = re.compile(r"\b([A-Za-z0-9][\w.-]*==[\w.+!-]*\w) depends on Python([<>=!~][^\s,]*(?:,[<>=!~][^\s,]*)*)")
_BUILD_FAILED = re.compile(r"Failed to (?:download and )?build:? `([A-Za-z0-9][\w.-]*==[\w.+!-]+)`")


def no_wheel(said: str, version: str = "") -> str:
    """The pinned releases an install's log (uv's) says have nothing for this Python, as a sentence
    that names them; "" when it says no such thing."""
    python = f"Python {version}" if version else "this Python"
    said = " ".join(said.split())  # uv wraps its lines to a terminal's width
    found: dict[str, str] = {}
    tags = {f"{m.group(1).lower()}=={m.group(2)}": m.group(3).replace("`", "").strip() for m in _WHEEL_TAGS.finditer(said)}
    for match in _NO_WHEEL.finditer(said):
        pin = match.group(1)
        only = tags.get(pin.lower())
        found.setdefault(pin, f"{pin} has no wheel for {python}" + (f" (its wheels are for {only})" if only else ""))
    for match in _REQUIRES_PYTHON.finditer(said):
        found.setdefault(match.group(1), f"{match.group(1)} requires Python {match.group(2)}")
    for match in _BUILD_FAILED.finditer(said):
        found.setdefault(match.group(1), f"{match.group(1)} has no wheel for {python}, and its build from source failed")
    return "; ".join(found.values())


def _fix(version: str) -> str:
    return (f"raise the pins named to releases made for Python {version or 'this Python'} (an old release has wheels only for "
            "the Pythons of its time), or set the `python-version` input (3.10 or newer) to a Python they have wheels for")


def wait_for_mlflow_client(environ: Mapping[str, str] = os.environ, *, required: bool = True, timeout: float = 1800.0,
                           poll: float = 0.05) -> None:
    """Return once the setup action has installed the packages only MLflow's client needs into
    lockstep's environment, after lockstep's checks began (LOCKSTEP_MLFLOW_CLIENT_STATUS names the
    file its exit code lands in). `required`: raise MlflowError (exit 7) with the install's log when
    it failed; otherwise only wait for it to end (the guard: nothing may still be writing to
    lockstep's environment when the project's code starts)."""
    status = environ.get("LOCKSTEP_MLFLOW_CLIENT_STATUS")
    if not status or status in _ready:
        return
    path = Path(status)
    log = path.with_name("mlflow-install.log")
    started = time.monotonic()
    while not path.is_file():
        if not _installing(path.with_name("tool.pid")) and not path.is_file():
            if not required:
                return
            raise MlflowError(f"the install of MLflow's client into lockstep's environment stopped without finishing ({log})",
                              hint="its process was ended from outside (out of memory, or the runner); re-run the job")
        if time.monotonic() - started > timeout:
            raise MlflowError(f"MLflow's client was still installing into lockstep's environment after {timeout:.0f} s ({log})",
                              hint="the install's progress is in that log; re-run the job")
        time.sleep(poll)
    code = path.read_text().strip()
    if code != "0":
        if not required:
            return
        try:
            said = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            said = ""
        last = " | ".join(line.strip() for line in said.splitlines()[-5:] if line.strip())[-1500:]
        raise MlflowError(f"MLflow's client did not install into lockstep's environment (exit {code or '?'}): {last or '(nothing printed)'}",
                          hint=f"the whole log is {log}; a package index that could not be reached is the usual cause: re-run the job")
    _ready.add(status)


def _python_version(pyvenv_cfg: Path) -> str:
    """The Python version a virtual environment was made for (`version_info` from uv, `version` from venv)."""
    try:
        text = pyvenv_cfg.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            return value.strip()
    return ""


def _installing(pid_file: Path) -> bool:
    """Whether the install named by the setup action's pid file still runs (no file: assume so)."""
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except PermissionError:
        return True  # it runs, as someone else
    except (OSError, ValueError):
        return not pid_file.is_file()
    return True


def requirement_files(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The files the setup action installed the project's environment from, relative to the
    project (LOCKSTEP_PROJECT_REQUIREMENTS holds its entries, extras included: `pyproject.toml[gpu]`)."""
    return [entry.split("[", 1)[0] for entry in environ.get("LOCKSTEP_PROJECT_REQUIREMENTS", "").split()]


def install_base(project: Path, workspace: Path, target: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Install into `target` the project's environment as the base commit gives it: the setup
    action's requirement entries read in the base's checkout (`project`, inside `workspace`, the
    checkout's root), by the setup action's own script. For the base's evaluation of a pull
    request that changes its packages: the PR's environment would run the PR's packages in the
    base's evaluation too. Returns the environment's `bin` folder; raises InputError (exit 2)
    with the install's last words when it fails."""
    setup = Path(__file__).resolve().parents[2] / "actions" / "setup" / "setup.sh"
    if not setup.is_file():
        raise InputError("the base's requirements cannot be installed: lockstep is not running from its action's source",
                         hint="run PR validation through the setup action (pr-validate.yml does)")
    env = procenv.for_untrusted_code(environ)  # uv runs the base's packages' build code: no credential
    env.update({name: value for name, value in environ.items() if name.startswith(("UV_INDEX", "UV_EXTRA_INDEX", "PIP_INDEX", "PIP_EXTRA_INDEX"))})
    # the entries the PR's environment was installed from, those the base has (none: setup.sh's defaults)
    entries = [entry for entry in environ.get("LOCKSTEP_PROJECT_REQUIREMENTS", "").split() if (project / entry.split("[", 1)[0]).is_file()]
    env.update(RUNNER_TEMP=str(target.parent), GITHUB_ACTION_PATH=str(setup.parent), SETUP_WORKING_DIRECTORY=str(project),
               SETUP_REQUIREMENTS=" ".join(entries), SETUP_ENV_DIR=str(target), SETUP_PYTHON=sys.executable)
    started = time.monotonic()
    proc = subprocess.run(["bash", str(setup), "project"], cwd=workspace, env=env, capture_output=True, text=True, check=False)  # noqa: S603, S607
    said = (proc.stdout + proc.stderr).strip()
    with gha.group(f"the base's project environment ({time.monotonic() - started:.1f} s)"):
        gha.info(said or "(nothing printed)")
    if proc.returncode != 0:
        last = " | ".join(line.strip() for line in said.splitlines()[-5:] if line.strip())[-1500:]
        cause = no_wheel(said, platform.python_version())
        raise InputError(f"the base's requirements did not install (exit {proc.returncode}): {cause or last}",
                         hint="the install's output is in the group above" + (f"; {_fix(platform.python_version())}" if cause else ""))
    return target / "bin"


def installed_from_checkout(environ: Mapping[str, str], checkout: Path) -> list[str]:
    """The distributions in the environment of `python` on environ's PATH that were installed from
    a folder of `checkout` (`-e .` in requirements.txt, `./pkg`), as their `direct_url.json` says.
    Their code is the pull request's: an editable install imports it from the PR's checkout, any
    other was built from it. Read from the files, without running the environment's Python."""
    python = shutil.which("python", path=environ.get("PATH", ""))
    if python is None:
        return []
    venv = Path(python).parent.parent  # not resolved: a venv's python links to the interpreter it came from
    if not (venv / "pyvenv.cfg").is_file():
        return []
    root = checkout.resolve()
    found = []
    for record in sorted(venv.glob("lib/python*/site-packages/*.dist-info/direct_url.json")):
        try:
            url = str(json.loads(record.read_text("utf-8")).get("url") or "")
        except (OSError, ValueError, AttributeError):
            continue
        if url.startswith("file://") and Path(unquote(urlparse(url).path)).resolve().is_relative_to(root):
            found.append(record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0])
    return found


def main(argv: list[str]) -> int:
    """`python -m lockstep.projectenv explain LOG PYVENV_CFG`, for the setup action when the project's
    install failed in its own step: an error annotation naming the pinned releases the log says have
    nothing for the environment's Python, and what to do; nothing when it says no such thing."""
    if len(argv) != 3 or argv[0] != "explain":
        print(main.__doc__, file=sys.stderr)
        return 2
    try:
        said = Path(argv[1]).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    version = _python_version(Path(argv[2]))
    cause = no_wheel(said, version)
    if cause:
        gha.error(f"the project's requirements did not install: {cause}. To fix: {_fix(version)}", title="lockstep setup")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
