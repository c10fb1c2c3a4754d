"""Everything lockstep asks of git, with plain `git` commands in this one module."""

from __future__ import annotations

import base64
import os
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import GitError, InputsMovedError

# GIT_NO_REPLACE_OBJECTS: what a commit holds is what its hash says, whatever `git replace` refs the
# checkout has (the base's metrics file read as another blob)
_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_NO_REPLACE_OBJECTS": "1"}
PUSH_TOKEN_ENV = "LOCKSTEP_PUSH_TOKEN"  # noqa: S105 - the variable's name, not a secret
_push_token = ""


def take_push_token() -> str:
    """Take the push token out of the environment (LOCKSTEP_PUSH_TOKEN), so that no process
    lockstep starts (DVC, the training stages) inherits it; only `auth_env()` hands it on."""
    global _push_token
    token = os.environ.pop(PUSH_TOKEN_ENV, "").strip()
    if token:
        _push_token = token
    return token


def basic_auth(token: str) -> str:
    """The credential actions/checkout uses for a token: basic auth of x-access-token:<token>."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def auth_env() -> dict[str, str]:
    """Environment that gives ONE git process the push token as an HTTP header for the GitHub
    server (GIT_CONFIG_COUNT/KEY/VALUE: nothing is written to the git config). Empty without a token."""
    if not _push_token:
        return {}
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    count = os.environ.get("GIT_CONFIG_COUNT", "0")
    index = int(count) if count.isdigit() else 0
    return {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"http.{server}/.extraheader",
        f"GIT_CONFIG_VALUE_{index}": f"AUTHORIZATION: basic {basic_auth(_push_token)}",
    }


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


def common_dir(path: str | Path) -> Path:
    """The git folder shared by every worktree of the checkout (config, hooks, refs, objects)."""
    return (Path(path) / run(["rev-parse", "--git-common-dir"], path).stdout.strip()).resolve()


def head(path: str | Path) -> str:
    return run(["rev-parse", "HEAD"], path).stdout.strip()


def prefix_of(project_dir: str | Path) -> str:
    """The project's folder relative to the repository root ('' at the root), with a slash."""
    rel = os.path.relpath(Path(project_dir).resolve(), toplevel(project_dir).resolve())
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def has_commit(path: str | Path, sha: str) -> bool:
    return run(["cat-file", "-e", "--end-of-options", f"{sha}^{{commit}}"], path, check=False).returncode == 0


def ensure_commit(path: str | Path, sha: str, *, remote: str = "origin") -> None:
    """Make `sha` available in a shallow clone (fetch it by SHA, depth 1, no tags)."""
    if has_commit(path, sha):
        return
    proc = run(["fetch", "--no-tags", "--depth=1", "--end-of-options", remote, sha], path, check=False, env=auth_env())
    if proc.returncode != 0 or not has_commit(path, sha):
        raise GitError(
            f"could not fetch the base commit {sha[:12]} from {remote}: {proc.stderr.strip()}",
            hint="the checkout needs read access to the repository; with actions/checkout keep the default token",
        )


def show(path: str | Path, rev: str, file: str) -> str | None:
    """The text of `file` (path from the repository root) at `rev`, or None when absent there."""
    proc = run(["show", "--end-of-options", f"{rev}:{file}"], path, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout


def changed_files(path: str | Path, old: str, new: str) -> list[str]:
    """Paths from the repository root, exactly as on disk (NUL-separated: git quotes non-ASCII,
    quotes and newlines in its line output)."""
    out = run(["diff", "--name-only", "--no-renames", "-z", "--end-of-options", old, new, "--"], path).stdout
    return [name for name in out.split("\0") if name]


def tracked(path: str | Path, file: str) -> bool:
    """Whether git tracks `file` (relative to `path`), or any file inside it when it is a folder."""
    return bool(run(["ls-files", "--", file], path).stdout.strip())


def modified(path: str | Path) -> list[str]:
    """The tracked files of the working tree under `path` that differ from HEAD, relative to `path`."""
    out = run(["diff", "--name-only", "--relative", "HEAD", "--", "."], path).stdout
    return [line for line in out.splitlines() if line]


def ignored_by(path: str | Path, file: str) -> str:
    """Which ignore rule keeps `file` (relative to `path`) out of git, said as
    "project/.gitignore line 3 `results/`"; '' when git does not ignore it."""
    proc = run(["check-ignore", "--verbose", "--no-index", "--", file], path, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return ""
    where, _tab, _name = proc.stdout.rstrip("\n").partition("\t")
    source, _colon, rest = where.partition(":")
    line, _colon, pattern = rest.partition(":")
    if pattern.startswith("!"):
        return ""
    return f"{source} line {line} `{pattern}`"


def add_worktree(path: str | Path, sha: str, destination: str | Path) -> Path:
    """Check `sha` out, detached, into `destination` (a linked worktree of the same repository)."""
    run(["worktree", "add", "--detach", "--force", "--", str(destination), sha], path)
    return Path(destination)


def remove_worktree(path: str | Path, destination: str | Path) -> None:
    run(["worktree", "remove", "--force", "--", str(destination)], path, check=False)
    run(["worktree", "prune"], path, check=False)


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
        proc = run(["push", "--porcelain", remote, f"HEAD:refs/heads/{branch}"], repo_dir, check=False, env=auth_env())
        if proc.returncode == 0:
            return PushResult(head(repo_dir), attempt)
        outcome = push_outcome(proc.stderr + proc.stdout)
        if outcome == "refused":
            raise GitError(
                f"the server refused the push to {remote} {branch}: {_push_reason(proc)}",
                hint=(
                    "the branch is protected, a server hook declined the commit, or the token may not push. "
                    "Give the workflow a token allowed to push to this branch as the PUSH_TOKEN secret (a GitHub "
                    "App or PAT the branch rules let through); the job's GITHUB_TOKEN needs `contents: write` and "
                    "cannot bypass branch rules. Nothing was pushed."
                ),
            )
        if outcome != "race":
            raise GitError(
                f"git push to {remote} {branch} failed: {_push_reason(proc)}",
                hint="check the remote URL and the network, then re-run the job; nothing was pushed",
            )
        if attempt == max_attempts:
            break
        run(["fetch", "--no-tags", remote, f"refs/heads/{branch}"], repo_dir, env=auth_env())
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
        rebase = run(["rebase", "--end-of-options", upstream], repo_dir, check=False, env=identity)
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


# A refusal is final: the server, a hook or the token's permissions said no. A race (the branch
# moved since the checkout) is retried after a rebase. Refusal wins when both appear.
_REFUSED = ("remote rejected", "hook declined", "protected branch", "permission to", "denied",
            "error: 403", "returned error: 403", "http 403", "not allowed", "gh006", "gh013")
_RACE = ("fetch first", "non-fast-forward", "stale info", "[rejected]")


def push_outcome(text: str) -> str:
    """'refused', 'race' or 'failed', from git push's output (porcelain and stderr)."""
    lowered = text.lower()
    if any(word in lowered for word in _REFUSED):
        return "refused"
    if any(word in lowered for word in _RACE):
        return "race"
    return "failed"


def _push_reason(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stdout + "\n" + proc.stderr).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("To ", "Done", "hint:"))]
    return "; ".join(useful)[:800] or f"exit {proc.returncode}"


def head_of(path: str | Path, rev: str) -> str:
    return run(["rev-parse", rev], path).stdout.strip()


def subject(path: str | Path, rev: str) -> str:
    """The first line of a commit's message ('' when it cannot be read)."""
    proc = run(["log", "-1", "--format=%s", "--end-of-options", rev], path, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""
