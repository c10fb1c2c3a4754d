"""`lockstep demo`: the whole story on a temporary copy of the example project, on this machine,
with embedded defaults: a local folder as the DVC remote, a local MLflow store with the registry
(sqlite), and a local bare git repository as `origin`. No account, no network.

Each CI step runs in a fresh clone of origin with an empty DVC cache, as a runner would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import gha
from .errors import LockstepError

PROJECT = "example-project"


def _example_source() -> Path:
    env = os.environ.get("LOCKSTEP_EXAMPLE")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[2] / PROJECT, Path.cwd() / PROJECT]
    for candidate in candidates:
        if (candidate / "dvc.yaml").is_file():
            return candidate
    raise LockstepError(
        "the example project was not found",
        hint="run the demo from a checkout of lockstep, or set LOCKSTEP_EXAMPLE to the example-project folder",
    )


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = root / "origin.git"
        self.dev = root / "developer"
        self.remote = root / "dvc-remote"
        self.step = 0
        self.started = time.monotonic()
        self.rows: list[tuple[str, str]] = []
        tracking = root / "mlflow"
        tracking.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = f"sqlite:///{tracking / 'mlflow.db'}"
        self.artifacts = tracking / "artifacts"
        self.env = {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "GIT_AUTHOR_NAME": "Dana Developer",
            "GIT_AUTHOR_EMAIL": "dana@example.com",
            "GIT_COMMITTER_NAME": "Dana Developer",
            "GIT_COMMITTER_EMAIL": "dana@example.com",
            "GITHUB_REPOSITORY": "example/ml-repo",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
        os.environ.update(self.env)
        bin_dir = str(Path(sys.executable).parent)
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    # --- helpers ------------------------------------------------------------------------------

    def say(self, title: str) -> None:
        self.step += 1
        print(f"\n[{self.step}/8] {title}  (+{time.monotonic() - self.started:.0f}s)", flush=True)

    def sh(self, *argv: str, cwd: Path, quiet: bool = True) -> str:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True)  # noqa: S603 - the demo's own fixed commands
        if proc.returncode != 0:
            raise LockstepError(
                f"demo step failed: `{' '.join(argv)}` in {cwd} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}",
                hint=f"everything the demo made so far is in {self.root}",
            )
        if not quiet:
            print(proc.stdout, end="")
        return proc.stdout

    def dvc(self, *args: str, cwd: Path) -> str:
        return self.sh(sys.executable, "-m", "dvc", *args, cwd=cwd)

    def clone(self, name: str, branch: str = "main", depth: int | None = None) -> Path:
        target = self.root / name
        args = ["git", "clone", "-q", "-b", branch]
        if depth:
            args += ["--depth", str(depth)]
        self.sh(*args, f"file://{self.origin}", str(target), cwd=self.root)
        return target

    def in_project(self, checkout: Path):
        return _chdir(checkout / PROJECT)

    # --- the story ----------------------------------------------------------------------------

    def setup(self) -> None:
        self.say("A repository: the example project, a bare origin, a DVC remote and an MLflow store")
        self.sh("git", "init", "-q", "--bare", "-b", "main", str(self.origin), cwd=self.root)
        self.sh("git", "init", "-q", "-b", "main", str(self.dev), cwd=self.root)
        self.sh("git", "remote", "add", "origin", f"file://{self.origin}", cwd=self.dev)
        shutil.copytree(_example_source(), self.dev / PROJECT, ignore=shutil.ignore_patterns(".lockstep", "__pycache__", "cache", "tmp"))
        self.remote.mkdir()
        self.dvc("remote", "add", "-f", "-d", "storage", str(self.remote), cwd=self.dev / PROJECT)
        from mlflow import MlflowClient

        MlflowClient().create_experiment("lockstep/example/ml-repo/example-project", artifact_location=self.artifacts.as_uri())
        print(f"    origin {self.origin}\n    DVC remote {self.remote}\n    MLflow {self.tracking_uri}")

    def developer_trains(self, message: str) -> str:
        project = self.dev / PROJECT
        saved = os.environ.pop("MLFLOW_TRACKING_URI")  # a laptop run, not logged
        try:
            self.dvc("repro", cwd=project)
        finally:
            os.environ["MLFLOW_TRACKING_URI"] = saved
        self.dvc("push", cwd=project)
        self.sh("git", "add", "-A", cwd=self.dev)
        self.sh("git", "commit", "-q", "-m", message, cwd=self.dev)
        return self.sh("git", "rev-parse", "HEAD", cwd=self.dev).strip()

    def rebuild(self, name: str, **kwargs) -> "object":
        from . import rebuild

        checkout = self.clone(name)
        with self.in_project(checkout):
            result = rebuild.run(rebuild.RebuildInputs(project_dir=Path("."), repository="example/ml-repo", actor="lockstep-demo", **kwargs))
        self.sh("git", "pull", "-q", "--rebase", "origin", "main", cwd=self.dev)
        print(
            f"    stages {', '.join(result.stages)}; "
            f"{'committed ' + result.lock_commit[:12] if result.committed else 'dvc.lock unchanged, no commit'}; "
            f"{result.model_name} v{result.model_version} @{result.model_alias}{' + champion' if result.promoted else ''}"
        )
        self.rows.append((name, f"v{result.model_version}" + (" (champion)" if result.promoted else "")))
        return result

    def run(self) -> None:
        from . import report as reportmod, rollback, tracking, validate

        self.setup()

        self.say("The developer trains the first model on a laptop, pushes data and model, commits dvc.lock")
        first = self.developer_trains("First model")
        self.sh("git", "push", "-q", "origin", "main", cwd=self.dev)
        print(f"    main at {first[:12]}")

        self.say("Main rebuild: CI retrains from the inputs, pushes, commits back, registers")
        self.rebuild("ci-main-1", trigger="push")

        self.say("A pull request: more trees (train.n_estimators 100 -> 200), trained and pushed by the developer")
        base = self.sh("git", "rev-parse", "HEAD", cwd=self.dev).strip()
        self.sh("git", "checkout", "-q", "-b", "more-trees", cwd=self.dev)
        params = self.dev / PROJECT / "params.yaml"
        params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 200"))
        head = self.developer_trains("More trees")
        self.sh("git", "push", "-q", "origin", "more-trees", cwd=self.dev)

        self.say("PR validation in a fresh shallow clone: lock vs code, lock vs remote, re-evaluation, gates, MLflow")
        checkout = self.clone("ci-pr", branch="more-trees", depth=1)
        with self.in_project(checkout):
            result = validate.run(validate.ValidateInputs(
                project_dir=Path("."), base_sha=base, head_sha=head, pr_number="1",
                repository="example/ml-repo", report_dir=self.root / "pr-report",
            ))
        comment = reportmod.fit(result.report)
        (self.root / "pr-comment.md").write_text(comment, "utf-8")
        for check in result.report.checks:
            print(f"    {reportmod.STATUS_ICON[check.status]} {check.title}: {check.summary}")
        print(f"    the PR comment, as it would be posted: {self.root / 'pr-comment.md'}")
        if not result.report.passed:
            raise LockstepError("the demo's PR failed validation", hint=f"see {result.report_path}")
        self.rows.append(("PR #1 validation", "passed"))

        self.say("Merge, then the main rebuild for the merge")
        self.sh("git", "checkout", "-q", "main", cwd=self.dev)
        self.sh("git", "merge", "-q", "--no-ff", "-m", "Merge pull request #1 from more-trees", "more-trees", cwd=self.dev)
        self.sh("git", "push", "-q", "origin", "main", cwd=self.dev)
        self.rebuild("ci-main-2", trigger="push")

        self.say("workflow_dispatch retrain with a changed param (train.max_depth=4): a [skip ci] commit and a new version")
        self.rebuild("ci-dispatch", trigger="workflow_dispatch", set_params=["train.max_depth=4"], reason="try shallower trees")

        self.say("Rollback: move 'champion' back to version 2 and say how to restore it")
        tracker = tracking.Tracker()
        back = rollback.rollback(tracker, "breast-cancer-classifier", "champion", "2", actor="lockstep-demo", reason="demo rollback")
        print(f"    champion: v{back.previous} -> v{back.version}; restore with: {back.restore}")
        self.rows.append(("rollback", f"champion v{back.previous} -> v{back.version}"))
        self.summary(tracker)

    def summary(self, tracker) -> None:
        model = "breast-cancer-classifier"
        aliases = tracker.aliases(model)
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        print("\n## Summary\n")
        print("| version | aliases | accuracy | f1 | lock commit | trigger |")
        print("| --- | --- | --- | --- | --- | --- |")
        for version in sorted(tracker.versions(model), key=lambda v: int(v.version)):
            tags = version.tags
            print(
                f"| {version.version} | {', '.join(sorted(by_version.get(str(version.version), []))) or '-'} "
                f"| {tags.get('lockstep.metric.accuracy', '-')} | {tags.get('lockstep.metric.f1', '-')} "
                f"| {tags.get('lockstep.lock_commit', '')[:12]} | {tags.get('lockstep.trigger', '-')} |"
            )
        log = self.sh("git", "log", "--format=%h %an: %s", "-8", "origin/main", cwd=self.dev)
        print("\nCommits on origin/main:\n" + "\n".join(f"    {line}" for line in log.splitlines()))
        print(f"\nDone in {time.monotonic() - self.started:.0f}s. Everything is in {self.root}")
        print(f"Open the MLflow UI: mlflow ui --backend-store-uri {self.tracking_uri}")


class _chdir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.old = Path.cwd()
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.old)


def main(workdir: Path | None = None) -> int:
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lockstep-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise LockstepError(f"{root}: the demo needs an empty folder", hint="pass an empty or new --workdir")
    gha.info(f"lockstep demo in {root}")
    demo = Demo(root)
    demo.run()
    return 0
