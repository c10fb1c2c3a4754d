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

    def upsert_comment(self, repository: str, issue: int, body: str, marker: str) -> tuple[int, bool]:
        """Update the comment that carries `marker`, or create it. Returns (id, created)."""
        existing = None
        for comment in self.paginate(f"/repos/{repository}/issues/{issue}/comments"):
            if marker in (comment.get("body") or ""):
                existing = comment
                break
        if existing is not None:
            response = self.request("PATCH", f"/repos/{repository}/issues/comments/{existing['id']}", json={"body": body})
            return int(response.json()["id"]), False
        response = self.request("POST", f"/repos/{repository}/issues/{issue}/comments", json={"body": body})
        return int(response.json()["id"]), True

    def pulls_for_commit(self, repository: str, sha: str) -> list[dict[str, Any]]:
        return list(self.paginate(f"/repos/{repository}/commits/{sha}/pulls"))

    def open_pulls(self, repository: str, head: str | None = None) -> list[dict[str, Any]]:
        params = {"state": "open"}
        if head:
            params["head"] = head
        return list(self.paginate(f"/repos/{repository}/pulls", params))


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", ""))[:300] if isinstance(data, dict) else ""


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url).split("?")[0]
