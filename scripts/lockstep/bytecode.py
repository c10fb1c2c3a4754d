"""Keep the bytecode a job wrote, for the setup action's cache.

The setup action installs both environments afresh in every job (restoring finished environments
from a cache costs more than installing them: tens of thousands of files to create either way),
but compiling what is imported is a large part of a cold job. Python writes that bytecode on
first import with the source's modification time in it, and a fresh install gives every source a
new one, so those files would be stale in the next job. At the end of a job lockstep keeps them,
rewritten as *checked-hash* bytecode (PEP 552: the header holds a hash of the source, which
Python checks on every import), in one archive per tree (each environment, and lockstep's own
source) in the folder the cache saves: one file to restore, not thousands. The next job's setup
extracts them into its new environments. A source that changed since (a newer release within the project's
requirement ranges) fails the check and is compiled again, so a stale cache costs time, never
correctness.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

from . import gha

# PEP 552 flags: bit 0 hash-based, bit 1 check the source
_CHECKED_HASH = (0b11).to_bytes(4, "little")
SOURCE_TREE = "lockstep-source"  # the archive of lockstep's own modules (the action's scripts/)


def keep(archive: Path, tree: Path) -> int:
    """Write the bytecode under `tree` that is current for its source into `archive` (a zip of
    paths relative to `tree`), as checked-hash files. Returns how many."""
    kept = 0
    partial = archive.with_name(archive.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as out:  # the cache compresses the folder
        for folder, _dirs, files in os.walk(tree):
            if not folder.endswith("__pycache__"):
                continue
            for name in files:
                pyc = Path(folder) / name
                data = _checked_hash(pyc) if name.endswith(".pyc") else None
                if data is not None:
                    out.writestr(pyc.relative_to(tree).as_posix(), data)
                    kept += 1
    partial.replace(archive)
    return kept


def _checked_hash(pyc: Path) -> bytes | None:
    """The file as checked-hash bytecode, or None when it is not current for its source."""
    try:
        data = pyc.read_bytes()
        source = pyc.parent.parent / f"{pyc.name.split('.', 1)[0]}.py"
        if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER or source.is_symlink():
            return None
        text = source.read_bytes()
        digest = importlib.util.source_hash(text)
        flags = int.from_bytes(data[4:8], "little")
        if flags & 1:
            current = data[8:16] == digest
        else:  # timestamp-based: current when the source's mtime and size match the header
            stat = source.stat()
            current = (int.from_bytes(data[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
                       and int.from_bytes(data[12:16], "little") == len(text) & 0xFFFFFFFF)
        return data[:4] + _CHECKED_HASH + digest + data[16:] if current else None
    except OSError:
        return None  # a file that went away or cannot be read is only a missed speed-up


def trees(environ: Mapping[str, str]) -> dict[str, Path]:
    """What a job's bytecode is kept for: each environment the setup action made (LOCKSTEP_ENVIRONMENTS
    holds `tool` and `project`), and lockstep's own source when it runs from a source tree."""
    found: dict[str, Path] = {}
    root = Path(environ.get("LOCKSTEP_ENVIRONMENTS") or "/nonexistent")
    if root.is_dir():
        found = {p.name: p for p in sorted(root.iterdir()) if (p / "pyvenv.cfg").is_file()}
    source = Path(__file__).resolve().parents[1]
    if not source.is_relative_to(Path(sys.prefix).resolve()):
        found[SOURCE_TREE] = source
    return found


# "true": a later step of the job keeps the bytecode (pr-validate.yml, once the comment is posted:
# keeping it takes about a second, which the comment then does not wait for)
KEEP_LATER = "LOCKSTEP_BYTECODE_KEEP_LATER"


def keep_for_cache(environ: Mapping[str, str] = os.environ, *, last: bool = False) -> None:
    """At the end of `lockstep validate` or `lockstep rebuild` (or, with `last`, in the step the
    job keeps it in: `python -m lockstep.bytecode keep`): when the setup action asked for it (its
    cache missed), keep this job's bytecode for the cache to save. Each archive is written anew,
    also over one restored from another key (after an upgrade), which holds that key's."""
    save_dir = environ.get("LOCKSTEP_BYTECODE_SAVE")
    root = environ.get("LOCKSTEP_ENVIRONMENTS")
    if not save_dir or not root or (environ.get(KEEP_LATER) == "true" and not last):
        return
    kept_mark = Path(root) / "bytecode.kept"  # beside the environments: not in what the cache saves
    if kept_mark.exists():
        return  # kept already (a second lockstep command in the same job)
    target = Path(save_dir)
    target.mkdir(parents=True, exist_ok=True)
    kept = sum(keep(target / f"{name}.zip", tree) for name, tree in trees(environ).items())
    kept_mark.touch()
    gha.info(f"kept {kept} bytecode file(s) for the setup action's cache")


def adopt(prefix: Path, environ: Mapping[str, str] = os.environ) -> int:
    """Move the bytecode that processes run with `PYTHONPYCACHEPREFIX=prefix` wrote for the job's
    trees (the environments, lockstep's source) to where Python writes it by default, so that
    `keep_for_cache` finds it; then remove `prefix` with the rest (the project's own code's
    bytecode, which was sent there to stay out of its folders). Returns how many were moved."""
    moved = 0
    for tree in trees(environ).values():
        tree = tree.resolve()
        mirror = prefix / tree.relative_to(tree.anchor)
        for folder, _dirs, files in os.walk(mirror):
            source_dir = tree / Path(folder).relative_to(mirror)
            for name in files:
                if not name.endswith(".pyc") or not (source_dir / f"{name.split('.', 1)[0]}.py").is_file():
                    continue
                target = source_dir / "__pycache__" / name
                try:
                    target.parent.mkdir(exist_ok=True)
                    os.replace(Path(folder) / name, target)
                    moved += 1
                except OSError:
                    continue  # only a missed speed-up
    shutil.rmtree(prefix, ignore_errors=True)
    return moved


def link(archive: Path, tree: Path) -> int:
    """Extract a kept archive into a fresh install of its tree (the setup action, before anything
    runs): only files whose source is installed, so that a package no longer installed does not
    come back as a folder of bytecode. Returns how many."""
    written = 0
    with zipfile.ZipFile(archive) as kept:
        for name in kept.namelist():
            target = tree / name
            if (".." in Path(name).parts or Path(name).is_absolute() or target.parent.name != "__pycache__"
                    or not (target.parent.parent / f"{target.name.split('.', 1)[0]}.py").is_file() or target.exists()):
                continue
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(kept.read(name))
            written += 1
    return written


if __name__ == "__main__":  # setup.sh: link ARCHIVE TREE; pr-validate.yml, once the comment is posted: keep
    if len(sys.argv) == 2 and sys.argv[1] == "keep":
        keep_for_cache(last=True)
        sys.exit(0)
    if len(sys.argv) != 4 or sys.argv[1] != "link":
        sys.exit("usage: python -m lockstep.bytecode link ARCHIVE TREE | keep")
    count = link(Path(sys.argv[2]), Path(sys.argv[3]))
    print(f"{count} bytecode file(s) of {Path(sys.argv[2]).stem} restored from the cache")
