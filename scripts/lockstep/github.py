"""The GitHub REST API, with `requests`: the only module that talks to GitHub.

Follows GitHub's documented behaviour: `Link` pagination, `Retry-After` and
`x-ratelimit-reset` on secondary rate limits (403/429), retries with backoff on 5xx, and clear
messages for permission errors. Works on GitHub Enterprise through GITHUB_API_URL.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from .errors import GitHubError

API_VERSION = "2022-11-28"
DEFAULT_COMMENT_AUTHOR = "github-actions[bot]"  # who a workflow's GITHUB_TOKEN writes as
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHub:
    def __init__(
        self,
        token: str,
        api_url: str | None = None,
        *,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 120.0,
        timeout: float = 30.0,
    ) -> None:
        if not token:
            raise GitHubError(
                "no GitHub token was given",
                hint="pass `github-token: ${{ github.token }}` (the default) and grant `pull-requests: write`",
            )
        self.api_url = (api_url or os.environ.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "lockstep",
            }
        )
        self.max_retries = max_retries
        self.sleep = sleep
        self.max_wait = max_wait
        self.timeout = timeout

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else f"{self.api_url}{path_or_url}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                if attempt > self.max_retries:
                    raise GitHubError(
                        f"{method} {_path(url)}: {type(exc).__name__}: {exc}",
                        hint="check GITHUB_API_URL and the network; re-run the job",
                    ) from None
                self.sleep(self._backoff(attempt))
                continue
            if response.status_code < 400:
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None and attempt <= self.max_retries:
                if wait > self.max_wait:
                    raise GitHubError(
                        f"{method} {_path(url)}: rate limited for {wait:.0f}s more",
                        hint="GitHub asked to wait longer than lockstep waits; re-run the job later",
                    )
                self.sleep(wait)
                continue
            if response.status_code >= 500 and attempt <= self.max_retries:
                self.sleep(self._backoff(attempt))
                continue
            raise self._error(method, url, response)

    def _backoff(self, attempt: int) -> float:
        return min(30.0, 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 - retry jitter, not a secret

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        """Seconds to wait for a (secondary) rate limit, or None when this is not one."""
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = response.headers.get("x-ratelimit-reset")
            if reset and reset.isdigit():
                return max(0.0, int(reset) - time.time()) + 1
            return 60.0
        message = _message(response).lower()
        if response.status_code == 429 or "secondary rate limit" in message:
            return 60.0
        return None

    def _error(self, method: str, url: str, response: requests.Response) -> GitHubError:
        status = response.status_code
        message = _message(response)
        if status == 401:
            return GitHubError(
                f"{method} {_path(url)}: 401 {message}",
                hint="the token is invalid or expired; pass `github-token: ${{ github.token }}`",
            )
        if status == 403:
            return GitHubError(
                f"{method} {_path(url)}: 403 {message}",
                hint=(
                    "the token lacks permission: the job needs `permissions: pull-requests: write` "
                    "(fork PRs get a read-only token: use the fork-safe pr-comment workflow)"
                ),
            )
        if status == 404:
            return GitHubError(
                f"{method} {_path(url)}: 404 {message}",
                hint="check the repository and the PR number; a token without access also sees 404",
            )
        if status == 422:
            return GitHubError(f"{method} {_path(url)}: 422 {message}", hint="GitHub rejected the request body")
        return GitHubError(f"{method} {_path(url)}: {status} {message}", hint="GitHub failed; re-run the job")

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        while url:
            response = self.request("GET", url, params=query)
            query = None  # the next link carries the query
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(f"GET {_path(response.url)}: expected a list, got {type(items).__name__}")
            yield from items
            match = _NEXT.search(response.headers.get("Link", ""))
            url = match.group(1) if match else None

    # --- the endpoints lockstep uses -----------------------------------------------------------

    def upsert_comment(
        self, repository: str, issue: int, body: str, marker: str, author: str = DEFAULT_COMMENT_AUTHOR
    ) -> tuple[int, bool, str]:
        """Update the comment that carries `marker` AND was written by `author`, or create one.

        Anyone can paste the marker into a comment of their own; such a comment is never edited
        (a comment of ours is created beside it). `author` is the login the token writes as:
        `github-actions[bot]` for the job's GITHUB_TOKEN, `<app-slug>[bot]` for a GitHub App
        token, the user's login for a personal token. Returns (id, created, login the comment was
        written as)."""
        existing = None
        for comment in self.paginate(f"/repos/{repository}/issues/{issue}/comments"):
            if marker in (comment.get("body") or "") and _login(comment).lower() == author.lower():
                existing = comment
                break
        if existing is not None:
            response = self.request("PATCH", f"/repos/{repository}/issues/comments/{existing['id']}", json={"body": body})
            data = response.json()
            return int(data["id"]), False, _login(data)
        response = self.request("POST", f"/repos/{repository}/issues/{issue}/comments", json={"body": body})
        data = response.json()
        return int(data["id"]), True, _login(data)

    def pulls_for_commit(self, repository: str, sha: str) -> list[dict[str, Any]]:
        return list(self.paginate(f"/repos/{repository}/commits/{sha}/pulls"))

    def open_pulls(self, repository: str, head: str | None = None) -> list[dict[str, Any]]:
        params = {"state": "open"}
        if head:
            params["head"] = head
        return list(self.paginate(f"/repos/{repository}/pulls", params))

    # --- Actions: workflow_dispatch and its run (a token with `actions: write`) ---------------

    def dispatch_workflow(self, repository: str, workflow: str, ref: str, inputs: dict[str, str]) -> dict[str, Any] | None:
        """POST .../dispatches asking for the run's details; None when GitHub answers 204 (a
        server that does not return them yet)."""
        path = f"/repos/{repository}/actions/workflows/{workflow}/dispatches"
        body = {"ref": ref, "inputs": inputs, "return_run_details": True}
        with _ActionsHint(repository, workflow, "dispatch"):
            response = self.request("POST", path, json=body)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def workflow_runs(self, repository: str, workflow: str, *, event: str = "", created: str = "") -> list[dict[str, Any]]:
        """The newest runs of one workflow (the first page: enough to find a run just started)."""
        params: dict[str, Any] = {"per_page": 30, "exclude_pull_requests": "true"}
        if event:
            params["event"] = event
        if created:
            params["created"] = created
        with _ActionsHint(repository, workflow, "read"):
            response = self.request("GET", f"/repos/{repository}/actions/workflows/{workflow}/runs", params=params)
        return list(response.json().get("workflow_runs") or [])

    def workflow_run(self, repository: str, run_id: int) -> dict[str, Any]:
        with _ActionsHint(repository, str(run_id), "read"):
            response = self.request("GET", f"/repos/{repository}/actions/runs/{run_id}", params={"exclude_pull_requests": "true"})
        return dict(response.json())

    def run_reviews(self, repository: str, run_id: int | str) -> list[dict[str, Any]]:
        """The review history of a workflow run: who approved or rejected which environment, with
        their comment (GET .../actions/runs/{run_id}/approvals; a token with `actions: read`)."""
        with _ActionsHint(repository, f"run {run_id}", "read"):
            response = self.request("GET", f"/repos/{repository}/actions/runs/{run_id}/approvals")
        items = response.json()
        if not isinstance(items, list):
            raise GitHubError(f"GET {_path(response.url)}: expected a list, got {type(items).__name__}")
        return [item for item in items if isinstance(item, dict)]


class _ActionsHint:
    """Replace the comment-oriented hint of a 403/404 with what an Actions call needs."""

    def __init__(self, repository: str, what: str, access: str) -> None:
        self.repository, self.what, self.access = repository, what, access

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, _tb: object) -> None:
        if not isinstance(exc, GitHubError):
            return
        status = re.search(r": (\d{3}) ", exc.message)
        code = status.group(1) if status else ""
        if code == "403":
            permission = "`actions: write`" if self.access == "dispatch" else "`actions: read`"
            exc.hint = (f"the token lacks permission {permission} on {self.repository}: use a fine-grained token "
                        f"with the repository permission Actions: {'write' if self.access == 'dispatch' else 'read'} "
                        "(LOCKSTEP_DISPATCH_TOKEN), or a GitHub App token with actions: write")
        elif code == "404":
            exc.hint = (f"{self.repository} or {self.what} was not found; a token without access to the repository "
                        "also sees 404 (fine-grained token: add the repository, permission Actions: write)")
        elif code == "422":
            exc.hint = ("GitHub refused the dispatch: the ref must exist, the workflow must have `on: workflow_dispatch`, "
                        "and every input sent must be declared in its form")
        return


def _login(comment: dict[str, Any]) -> str:
    user = comment.get("user")
    return str(user.get("login") or "") if isinstance(user, dict) else ""


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", ""))[:300] if isinstance(data, dict) else ""


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url).split("?")[0]
