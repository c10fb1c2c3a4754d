"""Posting the report as one sticky PR comment per DVC project.

Same-repository PRs post straight from the validation job. Fork PRs use the two-stage pattern:
the `pull_request` run uploads the report as an artifact; a `workflow_run` run that never checks
out or runs PR code validates the artifact here and posts a comment it renders itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import report as reportmod
from .errors import ArtifactError, GitHubError
from .github import DEFAULT_COMMENT_AUTHOR, GitHub

# The files a report artifact may hold, each with its size cap. Only results.json is read; the
# job summary (report.md) and the plots page (plots.html) are there for people to download.
ARTIFACT_FILES = {"results.json": reportmod.RESULTS_MAX_BYTES, "report.md": 2_000_000, "plots.html": 30_000_000}
MAX_ARTIFACT_BYTES = sum(ARTIFACT_FILES.values())


@dataclass
class Posted:
    comment_id: int
    created: bool
    length: int
    author: str = ""  # the login GitHub says the comment was written as


def post(
    github: GitHub,
    repository: str,
    pr_number: int,
    rep: reportmod.Report,
    summary_url: str = "",
    author: str = DEFAULT_COMMENT_AUTHOR,
) -> Posted:
    """Create or update this project's comment; only a comment written by `author` is updated."""
    body = reportmod.fit(rep, summary_url=summary_url)
    comment_id, created, login = github.upsert_comment(repository, pr_number, body, reportmod.marker(rep.project), author)
    return Posted(comment_id, created, len(body), login)


def load_artifact(directory: Path, *, server_url: str = "", repository: str = "", run_conclusion: str = "") -> reportmod.Report:
    """Validate a downloaded report artifact and rebuild the report from its data.

    Accepts only the expected file names, regular files, no links, no sub-folders, a bounded
    size, and a results.json that parses into a consistent report whose fields have the expected
    types and forms. Links come only from lockstep's own knowledge: the workflow run URL is kept
    only when it is `{server_url}/{repository}/actions/runs/<digits>`, the MLflow run URL never
    (the run id is shown as code). A "passed" report from a run whose conclusion is not
    `success` is refused.
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
        size = entry.stat().st_size
        if size > ARTIFACT_FILES[entry.name]:
            raise ArtifactError(f"{entry.name} is {size} bytes, over its {ARTIFACT_FILES[entry.name]}-byte cap in the report artifact",
                                hint="not posted")
        total += size
        found.add(entry.name)
    if total > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"the report artifact is {total} bytes, over the {MAX_ARTIFACT_BYTES}-byte cap", hint="not posted")
    if "results.json" not in found:
        raise ArtifactError("results.json is missing from the report artifact", hint="was the validation job's upload step skipped?")
    rep = load_results(directory / "results.json", hint="the artifact was tampered with; not posted")
    for name, pattern in _ARTIFACT_FIELDS.items():
        if not pattern.fullmatch(getattr(rep, name)):
            raise ArtifactError(
                f"results.json: {name} is not of the expected form",
                hint="the artifact was tampered with; not posted",
            )
    expected_run = rf"{re.escape(server_url.rstrip('/'))}/{re.escape(repository)}/actions/runs/\d{{1,20}}(/attempts/\d{{1,4}})?"
    if not (server_url and repository and re.fullmatch(expected_run, rep.workflow_run_url)):
        rep.workflow_run_url = ""
    rep.mlflow_run_url = ""  # a fork chooses any URL it likes: show the run id only
    conclusion = run_conclusion.strip().lower()
    if rep.passed and conclusion and conclusion != "success":
        raise ArtifactError(
            f"the report artifact says the checks passed, but the validation run concluded '{conclusion[:20]}'",
            hint="a run that did not succeed cannot produce a passing report; the artifact was not posted",
        )
    return rep


def load_results(path: Path, *, hint: str = "run `lockstep validate` again; it writes results.json") -> reportmod.Report:
    """Read results.json into a Report; anything malformed is an ArtifactError naming the problem."""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{path.name}: not UTF-8 text", hint=hint) from None
    try:
        return reportmod.from_json(text, path.name)
    except ValueError as exc:
        raise ArtifactError(f"{path.name} is not a valid lockstep report: {exc}", hint=hint) from None


# What each identifying field of a fork's results.json may hold (all optional).
_ARTIFACT_FIELDS = {
    "pr_number": re.compile(r"\d{0,10}"),
    "head_sha": re.compile(r"[0-9a-f]{0,64}"),
    "base_sha": re.compile(r"[0-9a-f]{0,64}"),
    "lock_digest": re.compile(r"[0-9a-zA-Z]{0,128}"),
    "mlflow_run_id": re.compile(r"[0-9a-zA-Z_-]{0,64}"),
    "lockstep_version": re.compile(r"[0-9A-Za-z.+_-]{0,40}"),
}


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


__all__ = ["DEFAULT_COMMENT_AUTHOR", "GitHubError", "Posted", "load_artifact", "load_results", "post", "pr_for_head"]
