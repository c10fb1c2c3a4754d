"""Keep the bytecode a job wrote, for the setup action's cache.

The setup action installs both environments afresh in every job (restoring finished environments
from a cache costs more than installing them: tens of thousands of files to create either way),
but compiling what is imported is a large part of a cold job. Python writes that bytecode on
first import with the source's modification time in it, and a fresh install gives every source a
new one, so those files would be stale in the next job. At the end of a job lockstep copies them,
rewritten as *checked-hash* bytecode (PEP 552: the header holds a hash of the source, which
Python checks on every import), into the folder the cache saves; the next job's setup links them
into its new environments. A source that changed since (a newer release within the project's
requirement ranges) fails the check and is compiled again, so a stale cache costs time, never
correctness.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from . import gha

# PEP 552 flags: bit 0 hash-based, bit 1 check the source
_CHECKED_HASH = (0b11).to_bytes(4, "little")


def keep(save_dir: Path, environments: Path) -> int:
    """Copy the bytecode of every environment folder under `environments` (the setup action's
    `tool` and `project`) into `save_dir/<environment>/<same path>`, as checked-hash files. Only
    files that are current for their source are kept. Returns how many."""
    kept = 0
    for environment in sorted(p for p in environments.iterdir() if (p / "pyvenv.cfg").is_file()):
        for folder, _dirs, files in os.walk(environment):
            if not folder.endswith("__pycache__"):
                continue
            for name in files:
                if name.endswith(".pyc") and _keep_one(Path(folder) / name, environment, save_dir / environment.name):
                    kept += 1
    return kept


def _keep_one(pyc: Path, environment: Path, target_root: Path) -> bool:
    try:
        data = pyc.read_bytes()
        source = pyc.parent.parent / f"{pyc.name.split('.', 1)[0]}.py"
        if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER or source.is_symlink():
            return False
        text = source.read_bytes()
        digest = importlib.util.source_hash(text)
        flags = int.from_bytes(data[4:8], "little")
        if flags & 1:
            current = data[8:16] == digest
        else:  # timestamp-based: current when the source's mtime and size match the header
            stat = source.stat()
            current = (int.from_bytes(data[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
                       and int.from_bytes(data[12:16], "little") == len(text) & 0xFFFFFFFF)
        if not current:
            return False
        target = target_root / pyc.relative_to(environment)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[:4] + _CHECKED_HASH + digest + data[16:])
        return True
    except OSError:
        return False  # a file that went away or cannot be read is only a missed speed-up


def keep_for_cache(environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    """At the end of `lockstep validate` or `lockstep rebuild`: when the setup action asked for
    it (its cache missed), keep this job's bytecode for the cache to save."""
    save_dir, environments = environ.get("LOCKSTEP_BYTECODE_SAVE"), environ.get("LOCKSTEP_ENVIRONMENTS")
    if not save_dir or not environments or not Path(environments).is_dir():
        return
    target = Path(save_dir)
    if target.exists():
        return  # kept already (a second lockstep command in the same job)
    kept = keep(target, Path(environments))
    gha.info(f"kept {kept} bytecode file(s) for the setup action's cache")


def link(saved: Path, environment: Path) -> int:
    """Link the kept bytecode of one environment into its fresh install (the setup action, before
    anything runs): only files whose source is installed, so that a package no longer installed
    does not come back as a folder of bytecode. Returns how many."""
    linked = 0
    for folder, _dirs, files in os.walk(saved):
        target = environment / Path(folder).relative_to(saved)
        if target.name != "__pycache__" or not target.parent.is_dir():
            continue
        for name in files:
            if not (target.parent / f"{name.split('.', 1)[0]}.py").is_file():
                continue
            target.mkdir(exist_ok=True)
            try:
                os.link(Path(folder) / name, target / name)
            except FileExistsError:
                continue
            except OSError:
                shutil.copyfile(Path(folder) / name, target / name)
            linked += 1
    return linked


if __name__ == "__main__":  # setup.sh: python -m lockstep.bytecode link SAVED ENVIRONMENT
    if len(sys.argv) != 4 or sys.argv[1] != "link":
        sys.exit("usage: python -m lockstep.bytecode link SAVED ENVIRONMENT")
    count = link(Path(sys.argv[2]), Path(sys.argv[3]))
    print(f"{count} bytecode file(s) of {Path(sys.argv[3]).name} restored from the cache")
