"""The project's environment, which the setup action may still be installing in the background
while lockstep's first checks run (`project-in-background`): wait for it before running any of
the project's code."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from . import gha
from .errors import InputError

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
        raise InputError(f"the project's requirements did not install (exit {code or '?'}): {last}",
                         hint="the whole install log is in the group above; fix the requirements file or the `requirements` input")
    _ready.add(status)


def _installing(pid_file: Path) -> bool:
    """Whether the install named by the setup action's pid file still runs (no file: assume so)."""
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except PermissionError:
        return True  # it runs, as someone else
    except (OSError, ValueError):
        return not pid_file.is_file()
    return True
