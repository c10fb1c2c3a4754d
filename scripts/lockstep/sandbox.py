"""What a pull request's code could reach around its own environment, closed (Linux).

`procenv` gives the PR's code an environment without credentials, but the code runs as the same
user as lockstep, so it could still read them from `/proc/<lockstep's pid>/environ` (the block
the kernel shows there is the one the process started with), and it could leave a daemon behind
(double fork, `setsid`) that outlives its stage and rewrites the report before it is uploaded.

- `scrub_environ()` overwrites, in that start-up block, the value of every variable `procenv`
  withholds from untrusted code with `*`; lockstep keeps the values in `os.environ` and in the C
  environment it hands its own children (fresh copies that `/proc` does not show).
- `become_subreaper()` makes orphans of lockstep's children its own children, so a daemon cannot
  leave its tree; `contained()` kills and reaps whatever an untrusted command left running, with a
  warning naming how many it found.

Elsewhere than Linux both are no-ops.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from . import gha, procenv
from .guard import Guard

_PR_SET_CHILD_SUBREAPER = 36


def _linux() -> bool:
    return sys.platform.startswith("linux") and Path("/proc/self/stat").is_file()


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """The command name in /proc/<pid>/stat (which may hold spaces and parentheses), and the fields
    after it."""
    text = Path(f"/proc/{pid}/stat").read_text("utf-8", "replace")
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def scrub_environ() -> int:
    """Overwrite with `*` the values of withheld variables in this process's start-up environment
    block (what /proc/<pid>/environ shows); return how many were overwritten."""
    if not _linux():
        return 0
    _name, fields = _stat("self")
    # fields[0] is field 3 (state) of proc(5): env_start and env_end are fields 50 and 51
    env_start, env_end = int(fields[47]), int(fields[48])
    block = ctypes.string_at(env_start, env_end - env_start)
    scrubbed = 0
    offset = 0
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        key = name.decode("utf-8", "replace")
        if sep and value and procenv.withheld_from_untrusted(key):
            ctypes.memset(env_start + offset + len(name) + 1, ord("*"), len(value))
            scrubbed += 1
            if key in os.environ:
                # the C environment may still point into the block: give it (and so lockstep's own
                # children that inherit it) a copy of the value elsewhere in memory
                os.putenv(key, os.environ[key])
        offset += len(entry) + 1
    return scrubbed


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process rather than to init."""
    if not _linux():
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def harden() -> None:
    """Before any untrusted code runs: scrub the environment block, become a subreaper."""
    scrub_environ()
    become_subreaper()


def descendants(root: int | None = None) -> dict[int, str]:
    """Every living descendant of `root` (this process by default): pid -> command name."""
    if not _linux():
        return {}
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, after = _stat(entry.name)
        except OSError:
            continue  # gone meanwhile
        if after[0] in ("Z", "X"):
            continue  # dead: only its reaping is left
        pid = int(entry.name)
        parents[pid] = int(after[1])
        names[pid] = name
    found: dict[int, str] = {}
    for pid in parents:
        seen: set[int] = set()
        parent = parents[pid]
        while parent not in (0, root) and parent in parents and parent not in seen:
            seen.add(parent)
            parent = parents[parent]
        if parent == root:
            found[pid] = names[pid]
    return found


def _reap(pids: set[int]) -> None:
    for pid in list(pids):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                pids.discard(pid)
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                pids.discard(pid)  # reaped by its own parent


def kill_new(before: Mapping[int, str], *, deadline: float = 10.0) -> dict[int, str]:
    """SIGKILL every descendant not in `before`, again until none is left (one that forks while
    being killed leaves children that are re-parented here), and reap them."""
    killed: dict[int, str] = {}
    pending: set[int] = set()
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        left = {pid: name for pid, name in descendants().items() if pid not in before}
        if not left:
            break
        for pid, name in left.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.setdefault(pid, name)
            pending.add(pid)
        time.sleep(0.02)
        _reap(pending)
    while pending and time.monotonic() < stop:
        _reap(pending)
        time.sleep(0.02)
    return killed


@contextlib.contextmanager
def contained(what: str, guard: Guard | None = None) -> Iterator[None]:
    """Run untrusted code in the body; when it ends, nothing it started is left running, and (with
    a guard) nothing it changed that lockstep or the job's later steps run goes unnoticed."""
    before = descendants()
    if guard is not None:
        guard.before_command()
    try:
        yield
    finally:
        killed = kill_new(before)
        if killed:
            names = ", ".join(sorted(set(killed.values()))[:10])
            gha.warning(gha.one_line(
                f"{what} left {len(killed)} process(es) running after it ended ({names}); "
                "lockstep killed them so that nothing of the pull request's code outlives its step"
            ))
        if guard is not None:
            guard.verify(what)  # only now: nothing of the PR's code is left to write meanwhile


def run(argv: Sequence[str], *, cwd: str | Path, env: Mapping[str, str], what: str, guard: Guard | None = None) -> int:
    """Run a pull request's command with exactly `env`, its output to the log with workflow commands
    switched off, nothing it starts left running; its exit code."""
    with contained(what, guard), gha.commands_paused():
        return subprocess.run(list(argv), cwd=cwd, env=dict(env), check=False).returncode  # noqa: S603 - the caller's argv
