"""A local GitHub REST API test server for the endpoints lockstep uses.

It keeps issue comments and pull requests in memory, answers with GitHub's documented shapes,
status codes and headers (`Link` pagination, `Location`, `Retry-After`, rate-limit headers),
records every request, and lets a test queue faults (a 502, a secondary rate limit, a 403).

When ../shared/github-api/rest-subset.json is beside the checkout, every request body and every
response body is validated against GitHub's official schemas for that operation; a mismatch is
recorded in `schema_errors`, which the fixture asserts empty at teardown. The Actions endpoints
that `lockstep dispatch` uses (workflow dispatch, workflow runs) and the run's review history that
`lockstep promote` reads (who approved an environment) are not in that shared subset:
tests/github-api-extra.json holds them, extracted the same way from the same commit of GitHub's
OpenAPI description, and is loaded beside it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SUBSET = Path(__file__).resolve().parents[2] / "shared" / "github-api" / "rest-subset.json"
EXTRA = Path(__file__).resolve().parent / "github-api-extra.json"
TOKEN = "ghs_testtoken"
# who each token writes as: the job's GITHUB_TOKEN writes as github-actions[bot]
IDENTITIES = {
    TOKEN: {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
    "ghp_usertoken": {"login": "mallory", "id": 7, "type": "User"},
}


# --- OpenAPI 3.0 schema -> JSON Schema, and minimal valid instances -----------------------------


def json_schema(schema: Any) -> Any:
    """OpenAPI `nullable: true` becomes a JSON Schema null alternative; OpenAPI-only keys go."""
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "discriminator", "example", "deprecated") or key.startswith("x-"):
            continue
        if key in ("properties", "patternProperties"):
            result[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("allOf", "anyOf", "oneOf"):
            result[key] = [json_schema(sub) for sub in value]
        elif key in ("items", "additionalProperties", "not"):
            result[key] = json_schema(value)
        else:
            result[key] = copy.deepcopy(value)
    if schema.get("nullable") is True:
        if "type" in result:
            kind = result["type"]
            result["type"] = [kind, "null"] if isinstance(kind, str) else [*kind, "null"]
            if "enum" in result and None not in result["enum"]:
                result["enum"] = [*result["enum"], None]
        else:
            result = {"anyOf": [result, {"type": "null"}]}
    return result


def instance(schema: dict[str, Any]) -> Any:
    """A minimal value that satisfies `schema` (required properties only, nulls where allowed)."""
    if schema.get("nullable"):
        return None
    for key in ("allOf",):
        if key in schema:
            merged: dict[str, Any] = {}
            for part in schema[key]:
                value = instance(part)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return instance(schema[key][0])
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: instance(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2026-11-22T00:00:00Z"
    if fmt == "uri":
        return "https://github.example/x"
    if fmt == "email":
        return "x@example.com"
    return "x"


@dataclass
class Operation:
    id: str
    method: str
    pattern: re.Pattern
    request: dict | None
    responses: dict[str, dict]


def _operations() -> list[Operation]:
    if not SUBSET.exists():
        return []
    ops = []
    for path in (SUBSET, EXTRA):
        ops += _load(path)
    return ops


def _load(path: Path) -> list[Operation]:
    doc = json.loads(path.read_text())
    ops = []
    for op in doc["operations"]:
        regex = "^" + re.sub(r"\{[^}]+\}", "[^/]+", op["path"]) + "$"
        request = json_schema(op["requestBody"]["schema"]) if op.get("requestBody") else None
        ops.append(Operation(op["operationId"], op["method"], re.compile(regex), request, op["responses"]))
    return ops


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Fault:
    method: str
    path: str  # regex on the path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


class GitHubAPI:
    def __init__(self) -> None:
        self.ops = _operations()
        self.validating = bool(self.ops)
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.schema_errors: list[str] = []
        self.comments: dict[tuple[str, int], list[dict]] = {}
        self.pulls: dict[str, list[dict]] = {}
        self.next_id = 1000
        self.fork_pulls: set[int] = set()
        # Actions: workflow_dispatch and the runs it starts
        self.return_run_details = True  # False: answer 204, as a server without run details does
        self.dispatches: list[dict] = []
        self.runs: dict[int, dict] = {}
        self.run_statuses = ["queued", "in_progress", "completed"]  # served one per GET of a run
        self.run_conclusion = "success"
        self.run_polls: dict[int, int] = {}
        self.reviews: dict[tuple[str, int], list[dict]] = {}  # a run's environment reviews
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query), body, dict(self.headers))
                with api.lock:
                    api.requests.append(request)
                    status, headers, payload = api.dispatch(request)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json; charset=utf-8")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    # --- state helpers for tests --------------------------------------------------------------

    def fault(self, method: str, path: str, status: int, headers: dict[str, str] | None = None, message: str = "") -> None:
        self.faults.append(Fault(method, path, status, headers or {}, message))

    def comment_objects(self, repository: str, issue: int) -> list[dict]:
        return self.comments.setdefault((repository, issue), [])

    def seed_comments(self, repository: str, issue: int, count: int, body: str = "an unrelated comment", token: str = "ghp_usertoken") -> None:
        """`count` comments written by the identity of `token` (a person, by default)."""
        for _ in range(count):
            self.comment_objects(repository, issue).append(self._comment(repository, issue, body, token))

    def add_pull(self, repository: str, number: int, head_sha: str, *, state: str = "open", head_label: str = "", fork: bool = False) -> None:
        """A PR; a `fork` PR's head commit is not in the base repository, so the commit lookup
        does not list it (as `workflow_run.pull_requests` is empty for forks)."""
        pull = self._instance("pulls/get", "200")
        pull.update({"number": number, "state": state, "title": f"PR {number}"})
        pull["head"] = {**pull["head"], "sha": head_sha, "label": head_label or f"owner:branch-{number}"}
        self.pulls.setdefault(repository, []).append(pull)
        if fork:
            self.fork_pulls.add(number)

    def review(self, repository: str, run_id: int, login: str, comment: str = "", *, environment: str = "production",
               state: str = "approved") -> None:
        """A required reviewer's review of `environment` in a workflow run, as GitHub records it."""
        entry = self._instance("actions/get-reviews-for-run", "200")
        entry.update({"state": state, "comment": comment, "user": {**entry.get("user", {}), "login": login, "type": "User"}})
        entry["environments"] = [{"id": 161171787, "name": environment, "html_url": f"https://github.example/{repository}/deployments"}]
        self.reviews.setdefault((repository, int(run_id)), []).append(entry)

    # --- dispatch -----------------------------------------------------------------------------

    def dispatch(self, request: Request) -> tuple[int, dict[str, str], Any]:
        for fault in list(self.faults):
            if fault.method == request.method and re.search(fault.path, request.path):
                self.faults.remove(fault)
                return fault.status, dict(fault.headers), {"message": fault.message or "fault", "documentation_url": "https://docs.github.com/rest"}
        if request.headers.get("Authorization") not in {f"Bearer {token}" for token in IDENTITIES}:
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        op = self._operation(request)
        if op and op.request is not None:
            self._validate(op.request, request.body, f"{op.id} request")
        status, headers, payload = self._route(request)
        if op and str(status) in op.responses and payload is not None:
            schema = op.responses[str(status)].get("schema")
            if schema:
                self._validate(json_schema(schema), payload, f"{op.id} {status} response")
        return status, headers, payload

    def _operation(self, request: Request) -> Operation | None:
        for op in self.ops:
            if op.method == request.method and op.pattern.match(request.path):
                return op
        return None

    def _validate(self, schema: dict, value: Any, label: str) -> None:
        import jsonschema

        for error in jsonschema.Draft202012Validator(schema).iter_errors(value):
            self.schema_errors.append(f"{label}: {'/'.join(map(str, error.absolute_path))}: {error.message[:200]}")

    def _route(self, request: Request) -> tuple[int, dict[str, str], Any]:
        path = request.path
        match = re.match(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$", path)
        if match:
            repository, issue = match.group(1), int(match.group(2))
            if request.method == "GET":
                return self._page(request, self.comment_objects(repository, issue))
            if request.method == "POST":
                body = (request.body or {}).get("body")
                if not isinstance(body, str) or len(body) > 65536:
                    error = {"resource": "IssueComment", "code": "custom", "field": "body",
                             "message": "body is too long (maximum is 65536 characters)"}
                    return 422, {}, {"message": "Validation Failed", "errors": [error], "documentation_url": "https://docs.github.com/rest"}
                comment = self._comment(repository, issue, body, request.headers["Authorization"].removeprefix("Bearer "))
                self.comment_objects(repository, issue).append(comment)
                return 201, {"Location": comment["url"]}, comment
        match = re.match(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$", path)
        if match and request.method == "PATCH":
            repository, comment_id = match.group(1), int(match.group(2))
            body = (request.body or {}).get("body")
            if not isinstance(body, str) or len(body) > 65536:
                return 422, {}, {"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest"}
            for (repo, _issue), comments in self.comments.items():
                for comment in comments:
                    if repo == repository and comment["id"] == comment_id:
                        comment["body"] = body
                        comment["updated_at"] = _now()
                        return 200, {}, comment
            return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        match = re.match(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/pulls$", path)
        if match:
            repository, sha = match.group(1), match.group(2)
            found = [p for p in self.pulls.get(repository, []) if p["head"]["sha"] == sha and p["number"] not in self.fork_pulls]
            return self._page(request, found)
        match = re.match(r"^/repos/([^/]+/[^/]+)/actions/workflows/([^/]+)/dispatches$", path)
        if match and request.method == "POST":
            return self._dispatch_workflow(match.group(1), match.group(2), request.body or {})
        match = re.match(r"^/repos/([^/]+/[^/]+)/actions/workflows/([^/]+)/runs$", path)
        if match and request.method == "GET":
            runs = [r for r in self.runs.values() if r["_repository"] == match.group(1) and r["_workflow"] == match.group(2)]
            event = (request.query.get("event") or [None])[0]
            created = (request.query.get("created") or [""])[0]
            if event:
                runs = [r for r in runs if r["event"] == event]
            if created.startswith(">="):
                runs = [r for r in runs if r["created_at"] >= created[2:]]
            runs = sorted(runs, key=lambda r: r["id"], reverse=True)
            return 200, {}, {"total_count": len(runs), "workflow_runs": [self._public(r) for r in runs]}
        match = re.match(r"^/repos/([^/]+/[^/]+)/actions/runs/(\d+)/approvals$", path)
        if match and request.method == "GET":
            key = (match.group(1), int(match.group(2)))
            if key not in self.reviews and key[1] not in self.runs:
                return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            return 200, {}, list(self.reviews.get(key, []))
        match = re.match(r"^/repos/([^/]+/[^/]+)/actions/runs/(\d+)$", path)
        if match and request.method == "GET":
            run = self.runs.get(int(match.group(2)))
            if run is None or run["_repository"] != match.group(1):
                return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            polls = self.run_polls.get(run["id"], 0)
            self.run_polls[run["id"]] = polls + 1
            run["status"] = self.run_statuses[min(polls, len(self.run_statuses) - 1)]
            run["conclusion"] = self.run_conclusion if run["status"] == "completed" else None
            run["updated_at"] = _now()
            return 200, {}, self._public(run)
        match = re.match(r"^/repos/([^/]+/[^/]+)/pulls$", path)
        if match:
            pulls = self.pulls.get(match.group(1), [])
            state = (request.query.get("state") or ["open"])[0]
            head = (request.query.get("head") or [None])[0]
            pulls = [p for p in pulls if state == "all" or p["state"] == state]
            if head:
                pulls = [p for p in pulls if p["head"]["label"] == head]
            return self._page(request, pulls)
        return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}

    def _dispatch_workflow(self, repository: str, workflow: str, body: dict) -> tuple[int, dict[str, str], Any]:
        ref = body.get("ref")
        inputs = body.get("inputs") or {}
        if not isinstance(ref, str) or not ref:
            return 422, {}, {"message": "Invalid request.\n\n\"ref\" wasn't supplied.", "documentation_url": "https://docs.github.com/rest"}
        self.next_id += 1
        run = self._instance("actions/get-workflow-run", "200")
        run.update(
            {
                "id": self.next_id,
                "name": workflow,
                "event": "workflow_dispatch",
                "status": "queued",
                "conclusion": None,
                "head_branch": ref,
                "path": f".github/workflows/{workflow}",
                "display_title": str(inputs.get("reason") or workflow),
                "url": f"{self.url}/repos/{repository}/actions/runs/{self.next_id}",
                "html_url": f"https://github.example/{repository}/actions/runs/{self.next_id}",
                "created_at": _now(),
                "updated_at": _now(),
                "_repository": repository,
                "_workflow": workflow,
            }
        )
        self.runs[run["id"]] = run
        self.dispatches.append({"repository": repository, "workflow": workflow, **body})
        if self.return_run_details and body.get("return_run_details") is True:
            return 200, {}, {"workflow_run_id": run["id"], "run_url": run["url"], "html_url": run["html_url"]}
        return 204, {}, None

    @staticmethod
    def _public(run: dict) -> dict:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    def _page(self, request: Request, items: list) -> tuple[int, dict[str, str], Any]:
        per_page = min(100, int((request.query.get("per_page") or ["30"])[0]))
        page = int((request.query.get("page") or ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.url}{request.path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{request.path}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{self.url}{request.path}?per_page={per_page}&page={page - 1}>; rel="prev"')
            links.append(f'<{self.url}{request.path}?per_page={per_page}&page=1>; rel="first"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, headers, chunk

    def _instance(self, operation: str, status: str) -> dict:
        for op in self.ops:
            if op.id == operation:
                schema = op.responses[status]["schema"]
                return instance(schema if "items" not in schema else schema["items"])
        return {"head": {}, "user": {}}

    def _user(self) -> dict:
        """A schema-valid user object for a comment (the schema allows null; GitHub sends one)."""
        for op in self.ops:
            if op.id == "issues/create-comment":
                schema = {k: v for k, v in op.responses["201"]["schema"]["properties"]["user"].items() if k != "nullable"}
                return instance(schema)
        return {}

    def _comment(self, repository: str, issue: int, body: str, token: str = TOKEN) -> dict:
        self.next_id += 1
        comment = self._instance("issues/create-comment", "201")
        comment["user"] = {**self._user(), **IDENTITIES[token]}
        comment.update(
            {
                "id": self.next_id,
                "body": body,
                "url": f"{self.url}/repos/{repository}/issues/comments/{self.next_id}",
                "html_url": f"https://github.example/{repository}/pull/{issue}#issuecomment-{self.next_id}",
                "issue_url": f"{self.url}/repos/{repository}/issues/{issue}",
                "created_at": _now(),
                "updated_at": _now(),
            }
        )
        return comment


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
