"""`dvc add` as DVC 2 did it, for projects whose raw data was added before DVC 3 and never re-added:

    python dvc2add.py data/raw      (in the DVC project)

writes `data/raw.dvc` without `hash: md5`, keeps the files in the cache under their DVC 2 names
(the MD5 of a text file is taken with CRLF read as LF; a folder's listing is its own object) at
the cache's root instead of `files/md5/`, and ignores the folder in git. DVC 3 then reads the
entry as a legacy `md5-dos2unix` hash and pushes its objects to the remote's root. Checked against
DVC 2.58.2's own `dvc add` on the same files: the same `.dvc` file, listing and object names."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path


def legacy_md5(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" not in data[:8192]:  # a text file
        data = data.replace(b"\r\n", b"\n")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def store(cache: Path, oid: str, source: Path | bytes) -> None:
    target = cache / oid[:2] / oid[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        target.write_bytes(source)
    else:
        shutil.copyfile(source, target)


def add(project: Path, name: str) -> None:
    folder = project / name
    cache = project / ".dvc" / "cache"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    entries = []
    for path in files:
        oid = legacy_md5(path)
        store(cache, oid, path)
        entries.append({"md5": oid, "relpath": path.relative_to(folder).as_posix()})
    listing = json.dumps(entries).encode()
    oid = hashlib.md5(listing, usedforsecurity=False).hexdigest() + ".dir"
    store(cache, oid, listing)
    size = sum(p.stat().st_size for p in files)
    (folder.parent / f"{folder.name}.dvc").write_text(
        f"outs:\n- md5: {oid}\n  size: {size}\n  nfiles: {len(files)}\n  path: {folder.name}\n"
    )
    ignore = folder.parent / ".gitignore"
    ignore.write_text((ignore.read_text() if ignore.exists() else "") + f"/{folder.name}\n")


if __name__ == "__main__":
    add(Path(os.getcwd()), sys.argv[1])
