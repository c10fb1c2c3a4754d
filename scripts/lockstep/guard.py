"""What a pull request's code could change for what runs after it, checked after every command.

A PR's code runs as the same user as lockstep (`sandbox` takes its secrets away and kills what it
leaves running), so it can write every file that user can. Three kinds of file matter, because
something trusted reads them after the PR's code has run:

- **code lockstep runs later**: lockstep's own environment and source, the Python standard library
  it imports lazily, the job's other actions (`_actions` on a runner), and the checkout's git
  metadata (config, hooks, refs and existing objects, which git and DVC read later). A change
  there is tampering: lockstep stops with no verdict (`Tampered`, exit 1), before it imports or
  runs anything more. Bytecode under `__pycache__` is the one exception: Python writes it on first
  import (DVC in the PR's child does), so a `.pyc` written meanwhile is deleted, never trusted.
- **the step's command files** (`GITHUB_ENV`, `GITHUB_OUTPUT`, `GITHUB_PATH`, `GITHUB_STATE`,
  `GITHUB_STEP_SUMMARY`): the runner reads them when the step ends, and a line in `GITHUB_ENV`
  would reach every later step (`LD_PRELOAD`, `BASH_ENV`). Their content is put back as it was
  and the write is reported as tampering.

Detection compares each file's inode, size, modification and change time (`st_ctime`, which a
process cannot set back), so a file rewritten and given its old modification time is still seen;
a change time that moved alone is not a change when the file still has the digest its wheel's
RECORD gives (uv installs by hard-linking its cache, and linking the same file elsewhere moves it). Only running the
PR's code as another user would prevent the writes instead of seeing them; what is not watched
(the runner's own installation, Docker) is named in the README.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ChecksFailed

STEP_FILES = ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STATE", "GITHUB_STEP_SUMMARY")
# in the standard library's folder: what lockstep never imports, or watches elsewhere
_STDLIB_SKIP = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip"})
# in a git folder: what git and DVC read later; the index, logs and lock files change legitimately
_GIT_WATCHED = ("config", "HEAD", "packed-refs", "hooks", "info", "refs", "objects")
_GIT_NEW_OK = ("refs/", "objects/")  # a new ref or object is harmless; a changed one is not
# but these new ones change what git shows of existing commits: a replacement of an object
# (`git replace`: the base's metrics file read as another blob) and other stores of objects
_GIT_NEW_NOT_OK = ("refs/replace/", "objects/info/alternates", "objects/info/http-alternates")

Stamp = tuple[int, ...]  # inode, size, mtime_ns, ctime_ns, link count (a folder: (); only that it exists)


class Tampered(ChecksFailed):
    title = "the pull request's code changed what lockstep runs after it"


@dataclass(frozen=True)
class Tree:
    """A folder whose files must not change while the PR's code runs."""

    root: Path
    skip: frozenset[str] = frozenset()  # names of sub-folders not walked ("*.x": names ending in .x)
    only: tuple[str, ...] = ()  # when set: only these entries of the root are walked
    new_ok: tuple[str, ...] = ()  # path prefixes (relative) under which new files are allowed
    new_not_ok: tuple[str, ...] = ()  # ... except under these
    by_content: bool = False  # compare small files by digest (git rewrites HEAD and config in place)
    by_stamp: tuple[str, ...] = ()  # path prefixes compared by stamp even so (git's objects never change in place)
    records: bool = False  # an environment: its wheels' RECORD files give each installed file's digest

    def walk(self) -> dict[str, Stamp | str]:
        """Every entry under the root by relative path: a file's stamp (or digest), a folder's
        existence. os.scandir's entries carry their type, so a file costs one lstat."""
        found: dict[str, Stamp | str] = {}
        root = str(self.root)
        cut = len(root) + 1
        stack = [os.path.join(root, name) for name in self.only] if self.only else [root]
        while stack:
            folder = stack.pop()
            try:
                entries = os.scandir(folder)
            except NotADirectoryError:
                self._file(folder, folder[cut:], found)
                continue
            except OSError:
                continue  # absent, or gone meanwhile: seen as removed
            if folder != root:
                found[folder[cut:]] = ()
            with entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not self._skipped(entry.name):
                            stack.append(entry.path)
                    else:
                        self._file(entry.path, entry.path[cut:], found)
        return found

    def recorded(self, files: dict[str, Stamp | str]) -> dict[str, str]:
        """The digest each installed file had when its wheel was installed, from the RECORD files
        of the environment (read once, before any of the PR's code runs), by path under the root."""
        found: dict[str, str] = {}
        for rel in files:
            if not rel.endswith(".dist-info/RECORD"):
                continue
            folder = (self.root / rel).parent.parent  # site-packages: RECORD paths are relative to it
            try:
                rows = list(csv.reader(io.StringIO((self.root / rel).read_text("utf-8"))))
            except (OSError, UnicodeDecodeError, csv.Error):
                continue
            for row in rows:
                if len(row) >= 2 and row[1]:
                    target = os.path.normpath(folder / row[0])
                    if target.startswith(str(self.root) + os.sep):
                        found[target[len(str(self.root)) + 1:]] = row[1]
        return found

    def _skipped(self, name: str) -> bool:
        return name in self.skip or any(name.endswith(pattern[1:]) for pattern in self.skip if pattern.startswith("*"))

    def _file(self, path: str, rel: str, found: dict[str, Stamp | str]) -> None:
        try:
            stat = os.lstat(path)
        except OSError:
            return
        if self.by_content and stat.st_size <= 1 << 20 and not rel.startswith(self.by_stamp) and not os.path.islink(path):
            try:
                with open(path, "rb") as handle:
                    found[rel] = hashlib.sha256(handle.read()).hexdigest()
                return
            except OSError:
                pass
        found[rel] = _stamp(stat)


@dataclass
class Guard:
    """Snapshot before the PR's code runs; `verify()` after it ends, before anything else runs."""

    trees: list[Tree]
    step_files: dict[str, Path] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    removed_bytecode: int = 0
    compiled_again: int = 0  # of those, compiled again from their (unchanged) source by lockstep
    seconds: float = 0.0  # spent walking the trees, in all
    _before: list[dict[str, Stamp | str]] = field(default_factory=list)
    _contents: dict[str, bytes | None] = field(default_factory=dict)
    _taken: bool = False
    _records: list[dict[str, str]] = field(default_factory=list)  # per tree: file -> "sha256=<urlsafe b64>"

    def before_command(self) -> None:
        """The baseline for the next command: the last check's view of the folders when there was one
        (lockstep writes nothing there between commands but bytecode, which is checked either way),
        the command files as they are now."""
        if not self._taken:
            self.snapshot()
        else:  # what lockstep itself wrote to them since is its own
            self._contents = {name: _read(path) for name, path in self.step_files.items()}

    def snapshot(self) -> None:
        # nothing may still be writing to lockstep's environment: MLflow's client may be installing
        from . import projectenv

        projectenv.wait_for_mlflow_client(required=False)
        started = time.monotonic()
        self._before = [tree.walk() for tree in self.trees]
        if not self._records:
            self._records = [tree.recorded(before) if tree.records else {} for tree, before in zip(self.trees, self._before, strict=True)]
        self._contents = {name: _read(path) for name, path in self.step_files.items()}
        self._taken = True
        self.seconds += time.monotonic() - started

    def describe(self) -> str:
        files = sum(len(before) for before in self._before)
        removed = (f"; {self.removed_bytecode} bytecode file(s) written meanwhile deleted, {self.compiled_again} compiled "
                   "again by lockstep" if self.removed_bytecode else "")
        return (f"{files} file(s) in {len(self.trees)} folder(s) and {len(self.step_files)} command file(s) unchanged "
                f"by the pull request's code ({self.seconds:.2f} s of checks{removed})")

    def verify(self, what: str) -> None:
        """Put the step's command files back, delete bytecode written meanwhile, and raise
        `Tampered` naming what else changed."""
        started = time.monotonic()
        found: list[str] = []
        for name, path in self.step_files.items():
            kept = self._contents.get(name)
            if _read(path) != kept:
                _restore(path, kept)
                found.append(f"{name} (the step's command file {path}: put back as it was)")
        afters = []
        deleted: list[tuple[dict[str, Stamp | str], Path, str]] = []
        for tree, before, records in zip(self.trees, self._before, self._records, strict=True):
            after = tree.walk()
            afters.append(after)
            for rel in sorted(set(before) | set(after)):
                old, new = before.get(rel), after.get(rel)
                if old == new or _only_change_time(old, new) and (rel.startswith(tree.by_stamp) or _as_recorded(tree.root / rel, records.get(rel))):
                    continue
                if _is_bytecode(rel):
                    if new is not None:
                        self._remove(tree.root / rel)
                        after.pop(rel)
                        deleted.append((after, tree.root, rel))
                    continue
                if old is None and (_is_cache_folder(rel) or any(rel.startswith(prefix) for prefix in tree.new_ok)) \
                        and not any(rel.startswith(prefix) for prefix in tree.new_not_ok):
                    continue
                change = "added" if old is None else "removed" if new is None else "changed"
                found.append(f"{tree.root / rel if rel != '.' else tree.root} ({change})")
        self.seconds += time.monotonic() - started
        if found:
            self.findings += found
            shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
            raise Tampered(
                f"while {what} ran, the pull request's code changed files that lockstep or the job's "
                f"later steps run or read: {shown}. lockstep stops here with no verdict, and runs nothing more",
                hint="a pull request's code must not write outside its project; if this is a stage's own "
                "doing (it installs packages into the running Python, for instance), change the stage",
            )
        started = time.monotonic()
        for after, root, rel in deleted:
            self._compile_again(after, root, rel)
        self.seconds += time.monotonic() - started
        self._before = afters  # the next command is compared with this

    def _compile_again(self, after: dict[str, Stamp | str], root: Path, rel: str) -> None:
        """The bytecode of a source the check just found unchanged, compiled by lockstep itself, so
        that what the PR's code compiled is not compiled again in every job (and the bytecode
        cache can keep it). Checked-hash: Python compares the source's hash on each import."""
        import importlib.util
        import py_compile

        target = root / rel
        if target.name.count(".") != 2 or target.name.split(".")[1] != sys.implementation.cache_tag:
            return  # another interpreter's, or an optimisation level's: compiled when that one needs it
        try:
            source = Path(importlib.util.source_from_cache(str(target)))
        except ValueError:
            return
        if not source.is_file():
            return
        with contextlib.suppress(OSError, SyntaxError, ValueError, py_compile.PyCompileError):
            py_compile.compile(str(source), cfile=str(target), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH, quiet=2)
            after[rel] = _stamp(os.lstat(target))
            self.compiled_again += 1

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
            self.removed_bytecode += 1
        except FileNotFoundError:
            pass


def _stamp(stat: os.stat_result) -> Stamp:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_nlink)


def _only_change_time(old: Stamp | str | None, new: Stamp | str | None) -> bool:
    """Same inode, size and modification time; only the change time (and maybe the link count)
    moved. uv installs by hard-linking its cache, so a PR's own `uv sync`, or a build environment it
    makes and removes, moves the change time of files lockstep's environment shares: the content
    decides then, against the digest the wheel's RECORD gave (`_as_recorded`)."""
    return isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new) == 5 and old[:3] == new[:3]


def _as_recorded(path: Path, recorded: str | None) -> bool:
    if not recorded or "=" not in recorded:
        return False
    algorithm, _, expected = recorded.partition("=")
    if algorithm not in hashlib.algorithms_guaranteed:
        return False
    try:
        digest = hashlib.new(algorithm, path.read_bytes()).digest()
    except OSError:
        return False
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == expected


def _is_bytecode(rel: str) -> bool:
    parts = rel.split("/")
    return len(parts) >= 2 and parts[-2] == "__pycache__" and parts[-1].endswith(".pyc")


def _is_cache_folder(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1] == "__pycache__"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _restore(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(content)


def for_job(project: Path, git_dir: Path | None) -> Guard:
    """The guard of a validation: lockstep's Python and source, the standard library, the job's
    actions, the checkout's git metadata and the step's command files."""
    trees: list[Tree] = []
    roots: list[Path] = []

    def add(tree: Tree) -> None:
        root = tree.root.resolve()
        if not root.is_dir() or any(root == seen or root.is_relative_to(seen) for seen in roots):
            return
        roots.append(root)
        trees.append(dataclasses.replace(tree, root=root))

    source = Path(__file__).resolve().parent  # lockstep itself
    actions = next((parent for parent in source.parents if parent.name == "_actions"), None)
    if actions is not None:
        add(Tree(actions))  # the runner's copies of every action of the job, lockstep's included
    if sys.prefix != sys.base_prefix:
        add(Tree(Path(sys.prefix), records=True))  # lockstep's virtual environment
    else:
        for key in ("purelib", "platlib"):
            add(Tree(Path(sysconfig.get_paths()[key]), records=True))
    for key in ("stdlib", "platstdlib"):
        add(Tree(Path(sysconfig.get_paths()[key]), skip=_STDLIB_SKIP))
    checkout = source.parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "actions").is_dir():
        # lockstep run from its source (the setup action's way); a build's metadata beside it is not
        # read when lockstep runs (a development checkout has one)
        for name in ("scripts", "actions"):
            add(Tree(checkout / name, skip=frozenset({"*.egg-info"})))
    else:
        add(Tree(source))
    if git_dir is not None:
        add(Tree(git_dir, only=_GIT_WATCHED, new_ok=_GIT_NEW_OK, new_not_ok=_GIT_NEW_NOT_OK, by_content=True,
                 by_stamp=("objects/",)))
    files = {name: Path(os.environ[name]) for name in STEP_FILES if os.environ.get(name)}
    return Guard(trees, files)
