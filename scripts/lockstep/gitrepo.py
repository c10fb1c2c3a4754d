"""Everything lockstep asks of git, with plain `git` commands in this one module."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import GitError, InputsMovedError

_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def run(args: Sequence[str], cwd: str | Path, *, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    merged = {**os.environ, **_ENV, **(env or {})}
    # paths and file contents are bytes: undecodable ones survive as in os.fsdecode, never crash
    proc = subprocess.run(  # noqa: S603 - an argv list, never a shell
        ["git", *args], cwd=cwd, capture_output=True, env=merged, encoding="utf-8", errors="surrogateescape"  # noqa: S607 - git from PATH
    )
    if check and proc.returncode != 0:
        raise GitError(
            f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}",
            hint="check that the checkout is a git repository with an `origin` remote",
        )
    return proc


def toplevel(path: str | Path) -> Path:
    return Path(run(["rev-parse", "--show-toplevel"], path).stdout.strip())


def head(path: str | Path) -> str:
    return run(["rev-parse", "HEAD"], path).stdout.strip()


def prefix_of(project_dir: str | Path) -> str:
    """The project's folder relative to the repository root ('' at the root), with a slash."""
    rel = os.path.relpath(Path(project_dir).resolve(), toplevel(project_dir).resolve())
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def has_commit(path: str | Path, sha: str) -> bool:
    return run(["cat-file", "-e", f"{sha}^{{commit}}"], path, check=False).returncode == 0


def ensure_commit(path: str | Path, sha: str, *, remote: str = "origin") -> None:
    """Make `sha` available in a shallow clone (fetch it by SHA, depth 1, no tags)."""
    if has_commit(path, sha):
        return
    proc = run(["fetch", "--no-tags", "--depth=1", remote, sha], path, check=False)
    if proc.returncode != 0 or not has_commit(path, sha):
        raise GitError(
            f"could not fetch the base commit {sha[:12]} from {remote}: {proc.stderr.strip()}",
            hint="the checkout needs read access to the repository; with actions/checkout keep the default token",
        )


def show(path: str | Path, rev: str, file: str) -> str | None:
    """The text of `file` (path from the repository root) at `rev`, or None when absent there."""
    proc = run(["show", f"{rev}:{file}"], path, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout


def changed_files(path: str | Path, old: str, new: str) -> list[str]:
    """Paths from the repository root, exactly as on disk (NUL-separated: git quotes non-ASCII,
    quotes and newlines in its line output)."""
    out = run(["diff", "--name-only", "--no-renames", "-z", old, new], path).stdout
    return [name for name in out.split("\0") if name]


@dataclass
class PushResult:
    sha: str | None  # the pushed commit, or None when there was nothing to commit
    attempts: int


def commit_and_push(
    repo_dir: str | Path,
    paths: Sequence[str],
    *,
    message: str,
    author_name: str,
    author_email: str,
    branch: str,
    max_attempts: int = 5,
    moved_check: Callable[[str, str], list[str]] | None = None,
    remote: str = "origin",
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Commit `paths` and push to `branch` without force.

    When the push is rejected because the branch moved, fetch it, ask `moved_check(old, new)`
    whether the new commits change what this commit describes (a non-empty list of reasons stops
    here: nothing is pushed), rebase, and retry, at most `max_attempts` pushes, with jitter.
    """
    identity = {
        "GIT_AUTHOR_NAME": author_name,
        "GIT_AUTHOR_EMAIL": author_email,
        "GIT_COMMITTER_NAME": author_name,
        "GIT_COMMITTER_EMAIL": author_email,
    }
    run(["add", "--", *paths], repo_dir)
    if run(["diff", "--cached", "--quiet"], repo_dir, check=False).returncode == 0:
        return PushResult(None, 0)
    run(["commit", "--no-verify", "-m", message, "--", *paths], repo_dir, env=identity)
    base = head_of(repo_dir, "HEAD~1")
    for attempt in range(1, max_attempts + 1):
        proc = run(["push", "--porcelain", remote, f"HEAD:refs/heads/{branch}"], repo_dir, check=False)
        if proc.returncode == 0:
            return PushResult(head(repo_dir), attempt)
        text = (proc.stderr + proc.stdout).lower()
        if not any(word in text for word in ("rejected", "non-fast-forward", "fetch first", "stale info")):
            raise GitError(
                f"git push to {remote} {branch} was refused: {proc.stderr.strip()}",
                hint=(
                    "if the branch is protected, pass a GitHub App or PAT token allowed to bypass the rule "
                    "(the `PUSH_TOKEN` secret); the job's GITHUB_TOKEN needs `contents: write`. Nothing was pushed."
                ),
            )
        if attempt == max_attempts:
            break
        run(["fetch", "--no-tags", remote, f"refs/heads/{branch}"], repo_dir)
        upstream = head_of(repo_dir, "FETCH_HEAD")
        if moved_check is not None:
            reasons = moved_check(base, upstream)
            if reasons:
                raise InputsMovedError(
                    f"{branch} moved to {upstream[:12]} while this job ran, and the new commits change the "
                    f"inputs of the rebuilt stages: {'; '.join(reasons)}. This lock would describe a model "
                    "that no longer matches the branch, so it was not pushed.",
                    hint=f"nothing to do: the run for {upstream[:12]} rebuilds with those changes and pushes the right lock",
                )
        rebase = run(["rebase", upstream], repo_dir, check=False, env=identity)
        if rebase.returncode != 0:
            run(["rebase", "--abort"], repo_dir, check=False)
            raise InputsMovedError(
                f"{branch} moved to {upstream[:12]} and this job's commit no longer applies on it "
                f"({rebase.stdout.strip() or rebase.stderr.strip()}). Nothing was pushed.",
                hint=f"the run for {upstream[:12]} rebuilds from the newer state; re-run this job if it does not",
            )
        base = upstream
        sleep(random.uniform(0.2, 1.0) * attempt)  # noqa: S311 - retry jitter, not a secret
    raise GitError(
        f"git push to {remote} {branch} was rejected {max_attempts} times: the branch keeps moving",
        hint="raise `commit.max-attempts` in lockstep.yaml, or re-run the job; nothing was pushed",
    )


def head_of(path: str | Path, rev: str) -> str:
    return run(["rev-parse", rev], path).stdout.strip()
