"""The model's content digest, as recorded on its registered version (`lockstep.model_sha256`) and
checked by `lockstep verify`.

- a file: the SHA-256 of its bytes (what `sha256sum FILE` prints, and the digest GitHub's build
  provenance attestation of that file names);
- a folder: the SHA-256 of its manifest, the `sha256sum` lines of every regular file under it
  (`<hex>  <path relative to the folder>\\n`, paths with `/`, sorted by their UTF-8 bytes;
  symbolic links and empty folders are not part of it). The same digest from a shell:

      cd MODEL_DIR && find . -type f | LC_ALL=C sort | sed 's|^\\./||' | xargs -d '\\n' sha256sum | sha256sum
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(folder: Path) -> str:
    """The `sha256sum`-style manifest of a folder's regular files, sorted by relative path."""
    entries: list[tuple[bytes, str]] = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            path = Path(current) / name
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(folder).as_posix()
            entries.append((rel.encode("utf-8", "surrogateescape"), f"{file_sha256(path)}  {rel}\n"))
        dirs.sort()
    return "".join(line for _key, line in sorted(entries))


def sha256(path: Path) -> str:
    """The digest lockstep records for a model at `path` (a file or a folder), '' when absent."""
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        return hashlib.sha256(manifest(path).encode("utf-8", "surrogateescape")).hexdigest()
    return ""


def kind(path: Path) -> str:
    return "directory" if path.is_dir() else "file" if path.is_file() else ""


def gh_verify_command(model_file: str, repository: str) -> str:
    """The GitHub CLI command that checks the build provenance attestation of a model file."""
    repo = f" --repo {repository}" if repository else " --repo OWNER/REPO"
    return f"gh attestation verify {_shell_quote(model_file)}{repo}"


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)
