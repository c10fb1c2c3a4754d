"""Posting the report as one sticky PR comment per DVC project.

Same-repository PRs post straight from the validation job. Fork PRs use the two-stage pattern:
the `pull_request` run uploads the report as an artifact; a `workflow_run` run that never checks
out or runs PR code validates the artifact here and posts a comment it renders itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import report as reportmod
from .errors import ArtifactError, GitHubError
from .github import GitHub

ARTIFACT_FILES = {"results.json", "report.md"}
MAX_ARTIFACT_BYTES = 1_000_000


@dataclass
class Posted:
    comment_id: int
    created: bool
    length: int


def post(github: GitHub, repository: str, pr_number: int, rep: reportmod.Report, summary_url: str = "") -> Posted:
    body = reportmod.fit(rep, summary_url=summary_url)
    comment_id, created = github.upsert_comment(repository, pr_number, body, reportmod.marker(rep.project))
    return Posted(comment_id, created, len(body))


def load_artifact(directory: Path) -> reportmod.Report:
    """Validate a downloaded report artifact and rebuild the report from its data.

    Accepts only the expected file names, regular files, no links, no sub-folders, a bounded
    size, and a results.json that parses into a consistent report.
    """
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: the report artifact was not downloaded", hint="check the artifact name input")
    total = 0
    found = set()
    for entry in directory.iterdir():
        if entry.is_symlink():
            raise ArtifactError(f"{entry.name}: links are not allowed in the report artifact", hint="the artifact was tampered with; not posted")
        if entry.is_dir() or entry.name not in ARTIFACT_FILES:
            raise ArtifactError(
                f"{entry.name}: unexpected entry in the report artifact (expected only {', '.join(sorted(ARTIFACT_FILES))})",
                hint="the artifact was tampered with or produced by another tool; not posted",
            )
        total += entry.stat().st_size
        found.add(entry.name)
    if total > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"the report artifact is {total} bytes, over the {MAX_ARTIFACT_BYTES}-byte cap", hint="not posted")
    if "results.json" not in found:
        raise ArtifactError("results.json is missing from the report artifact", hint="was the validation job's upload step skipped?")
    try:
        return reportmod.from_json((directory / "results.json").read_text("utf-8"))
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"results.json is not a valid lockstep report: {exc}", hint="the artifact was tampered with; not posted") from None


def pr_for_head(github: GitHub, repository: str, head_sha: str, head_owner: str = "", head_branch: str = "") -> int:
    """The open PR whose head is `head_sha` (workflow_run.pull_requests is empty for forks)."""
    candidates = [p for p in github.pulls_for_commit(repository, head_sha) if p.get("state") == "open"]
    if not candidates and head_owner and head_branch:
        candidates = github.open_pulls(repository, head=f"{head_owner}:{head_branch}")
    matching = [p for p in candidates if (p.get("head") or {}).get("sha") == head_sha]
    if len(matching) != 1:
        raise ArtifactError(
            f"found {len(matching)} open pull request(s) whose head is {head_sha[:12]}",
            hint="the PR was closed or pushed to since validation ran; the next run posts the comment",
        )
    return int(matching[0]["number"])


__all__ = ["GitHubError", "Posted", "load_artifact", "post", "pr_for_head"]
