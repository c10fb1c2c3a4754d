"""Run the real workflow YAML under act (host mode, no Docker), as GitHub would.

- `OWNER/lockstep/...@REF` resolves to a temporary copy of this working tree.
- Each third-party action resolves to a local stand-in with the same input and output names
  (tests/standins; names from ../shared/pins.md).
- Where act 0.2.89 lags GitHub, the copy rewrites exactly these constructs, in `REWRITES` and
  nowhere else (tests/test_actrunner.py covers it):
    1. `uses: $/path`   -> `uses: lockstep-dev/lockstep/path@v1` (act rejects `$/`)
    2. `queue: max`     -> removed (act's schema does not know it)
- act's host executor gives every step act's own environment; act runs without the tests' settings
  (`TEST_ENV`), so jobs never see the tests' AWS or MLflow settings, only what is passed.
- Each Act keeps act's host workspaces and RUNNER_TEMP under its own folder (XDG_CACHE_HOME) and
  removes them in cleanup(). act removes a finished job's workspace; the git and DVC config files
  it held at the job's end are kept by the actions/cache stand-in's post step (`leftovers()`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDINS = Path(__file__).resolve().parent / "standins"
LIBRARY = "lockstep-dev/lockstep"
LIBRARY_REF = "v1"

THIRD_PARTY = {
    "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1": "checkout",
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97": "setup-python",
    "astral-sh/setup-uv@20cfd1bf945f4377ade1205e4dbc17946fc9a30d": "setup-uv",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "upload-artifact",
    "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": "download-artifact",
    "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c": "configure-aws-credentials",
    "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae": "cache",
    "actions/attest-build-provenance@a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32": "attest-build-provenance",
}

# the tests' own settings, which a job must get from the workflow (secrets, --env) or not at all;
# the machine's (PATH, locale, TLS certificates, proxies, package indexes) pass through
TEST_ENV = ("AWS_", "MLFLOW_", "GITHUB_", "RUNNER_", "INPUT_", "ACTIONS_", "LOCKSTEP_", "DVC_", "GIT_AUTHOR_", "GIT_COMMITTER_")

REWRITES = (
    (re.compile(r"^(\s*(?:-\s+)?uses:\s*)\$/([^\s#]+)", re.M), rf"\g<1>{LIBRARY}/\g<2>@{LIBRARY_REF}"),
    (re.compile(r"^[ \t]*queue:[ \t]*max[ \t]*\n", re.M), ""),  # that line only, not the blank line after it
)


def rewrite(text: str) -> str:
    for pattern, replacement in REWRITES:
        text = pattern.sub(replacement, text)
    return text


def library_copy(target: Path, root: Path = ROOT) -> Path:
    """This working tree (or another checkout of the library: `root`) as a release holds it (the files git tracks, and new ones it does not
    ignore: no virtual environment, caches or build output), with the act-only rewrites applied to
    every workflow and action file. act archives the whole folder for every `uses:` of it."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = root / name
        if source.is_file():  # a tracked file deleted in the working tree is not in the release
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for path in [*target.glob(".github/workflows/*.yml"), target / "action.yml", *target.glob("actions/*/action.yml")]:
        path.write_text(rewrite(path.read_text()))
    return target


@dataclass
class ActResult:
    returncode: int
    log: str

    def step_failed(self, text: str) -> bool:
        return text in self.log


class Act:
    def __init__(self, workdir: Path, cache: Path | None = None, *, shared_uv_cache: bool = True,
                 library: Path = ROOT) -> None:
        """`cache` is where the actions/cache stand-in keeps what it saves (share it across runs
        to see warm runs, as a repository's cache is shared across its workflow runs).
        `shared_uv_cache`: the setup-uv stand-in uses the machine's uv cache as it is, instead of
        restoring and saving its own as setup-uv does (the benchmarks turn it off).
        `library`: the checkout of lockstep the workflows call (the benchmarks compare two commits)."""
        self.shared_uv_cache = shared_uv_cache
        self.workdir = workdir
        self.cache = cache or workdir / "actions-cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.library = library_copy(workdir / "lockstep-library", library)
        self.artifacts = workdir / "artifacts"
        self.artifacts.mkdir(exist_ok=True)
        # act's host executor keeps each job's workspace and RUNNER_TEMP under $XDG_CACHE_HOME/act:
        # here, so tests can inspect what a run left behind, and cleanup() can remove it
        self.runner_home = workdir / "runner-home"
        self.leftovers_dir = workdir / "leftovers"
        self.binary = shutil.which("act", path=str(Path(os.sys.executable).parent)) or "act"

    def run(
        self,
        repo: Path,
        event: str,
        workflow: str,
        *,
        payload: dict | None = None,
        secrets: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        timeout: int = 900,
    ) -> ActResult:
        argv = [self.binary, event, "-W", f".github/workflows/{workflow}", "-P", "ubuntu-latest=-self-hosted",
                "--local-repository", f"{LIBRARY}@{LIBRARY_REF}={self.library}"]
        for ref, folder in THIRD_PARTY.items():
            argv += ["--local-repository", f"{ref}={STANDINS / folder}"]
        if payload is not None:
            event_file = self.workdir / f"event-{event}.json"
            event_file.write_text(json.dumps(payload))
            argv += ["-e", str(event_file)]
        for key, value in (secrets or {}).items():
            argv += ["-s", f"{key}={value}"]
        environment = {"LOCKSTEP_TEST_ARTIFACTS": str(self.artifacts), "LOCKSTEP_TEST_CACHE": str(self.cache),
                       "LOCKSTEP_TEST_LEFTOVERS": str(self.leftovers_dir / f"{event}-{workflow}"), **(env or {})}
        for key, value in environment.items():
            argv += ["--env", f"{key}={value}"]
        # act's host executor hands its own environment to every step: without the tests' settings,
        # a job sees what the workflow passes (secrets, --env), as on a runner
        host = {key: value for key, value in os.environ.items() if not key.startswith(TEST_ENV) and key != "CI"}
        # the tests share the machine's uv cache; a benchmark's job starts with an empty one, as on a
        # fresh runner, unless setup-uv restores its own (enable-cache points UV_CACHE_DIR there)
        uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv")
        if self.shared_uv_cache:
            argv += ["--env", f"LOCKSTEP_TEST_UV_CACHE={uv_cache}"]
        else:
            uv_cache = tempfile.mkdtemp(prefix="uv-cache-", dir=self.workdir)
        host.update(ACT_CACHE_DIR=str(self.workdir / "act-cache"), XDG_CACHE_HOME=str(self.runner_home), UV_CACHE_DIR=uv_cache,
                    MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        proc = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=timeout, env=host)
        log = proc.stdout + proc.stderr
        (self.workdir / f"act-{event}-{workflow}.log").write_text(log)
        return ActResult(proc.returncode, log)

    def leftovers(self) -> list[Path]:
        """The git and DVC config files the jobs left in their workspaces, as kept at each job's
        end by the actions/cache stand-in's post step (act itself removes a finished workspace)."""
        return sorted(p for p in self.leftovers_dir.rglob("*") if p.is_file())

    def cleanup(self) -> None:
        """Remove the workspaces and RUNNER_TEMP (the set-up environments are large); logs and
        artifacts stay for the test's report."""
        shutil.rmtree(self.runner_home, ignore_errors=True)


# --- a consumer repository's CI, as the end-to-end tests drive it --------------------------------

REPOSITORY = "octo/ml"
REPOSITORY_OBJECT = {"full_name": REPOSITORY, "name": "ml", "owner": {"login": "octo"}}  # an event's `repository`
SECRET_KEY = "lockstep-e2e-secret-7f3a9c"  # moto accepts any key; a value that can be searched for


def install_workflows(consumer) -> None:
    """Commit the example project's consumer workflows, calling this library, on the consumer's main."""
    target = consumer.dev / ".github" / "workflows"
    target.mkdir(parents=True)
    for source in sorted((ROOT / "example-project" / "workflows").glob("*.yml")):
        (target / source.name).write_text(source.read_text().replace("OWNER/lockstep/", f"{LIBRARY}/"))
    consumer.commit("CI workflows")


def pr_payload(number, base, head, head_repo=REPOSITORY, *, head_ref="feature", title="More trees", body=""):
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "title": title,
            "body": body,
            "base": {"sha": base, "ref": "main", "repo": {"full_name": REPOSITORY}},
            "head": {"sha": head, "ref": head_ref, "repo": {"full_name": head_repo}},
        },
        "repository": REPOSITORY_OBJECT,
    }


def push_payload(sha):
    return {"ref": "refs/heads/main", "after": sha, "repository": REPOSITORY_OBJECT}


def dispatch_payload(inputs: dict[str, str]):
    return {"ref": "refs/heads/main", "inputs": inputs, "repository": REPOSITORY_OBJECT}


def run_env(consumer, api):
    return {
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPOSITORY,
        "AWS_ENDPOINT_URL": consumer.bucket.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "LOCKSTEP_TEST_ORIGIN": f"file://{consumer.origin}",
    }


def secrets(mlflow_url=""):
    from github_api import TOKEN

    values = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "GITHUB_TOKEN": TOKEN}
    if mlflow_url:
        values["MLFLOW_TRACKING_URI"] = mlflow_url
    return values
