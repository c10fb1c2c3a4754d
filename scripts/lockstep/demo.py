"""`lockstep demo`: the whole story on a temporary copy of the example project, on this machine,
with embedded defaults: a local folder as the DVC remote, a local MLflow store with the registry
(sqlite), and a local bare git repository as `origin`. No account, no network.

The example project is lockstep's package data and the repository is lockstep.scaffold's, so the
demo runs from an installed package as from a checkout; the model, the aliases and the MLflow
experiment are the ones the example's lockstep.yaml names. Each CI step runs in a fresh clone of
origin with an empty DVC cache, as a runner would.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

from . import config, gha, lineage, scaffold
from .errors import InputError, LockstepError

PROJECT = scaffold.EXAMPLE
REPOSITORY = "example/ml-repo"
# what the demo needs beyond lockstep's own dependencies (module: package), its `demo` extra:
# MLflow's SQLite registry, and the libraries the example's stages import
NEEDS = {"sqlalchemy": "sqlalchemy", "alembic": "alembic", "sklearn": "scikit-learn", "pandas": "pandas"}


def _check_environment() -> None:
    missing = sorted({package for module, package in NEEDS.items() if importlib.util.find_spec(module) is None})
    if missing:
        raise InputError(
            f"the demo needs {', '.join(missing)} in lockstep's environment ({sys.prefix}), which has not got them",
            hint='install lockstep with its demo extra, `pip install "lockstep[demo]"` (in a checkout of lockstep: `bash .ci/run demo`)',
        )


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.remote = root / "dvc-remote"
        self.cfg = config.load(scaffold.example_project(), required=True)
        self.model = self.cfg.model_name or ""
        self.champion = self.cfg.promote_to or ""
        if not self.model or not self.champion:
            raise LockstepError("the example's lockstep.yaml names no model or no promote-to alias", hint="this is a packaging bug: please report it")
        self.experiment = lineage.experiment_name(self.cfg.experiment, REPOSITORY, lineage.project_label(PROJECT, REPOSITORY))
        self.step = 0
        self.started = time.monotonic()
        self.rows: list[tuple[str, str]] = []
        tracking = root / "mlflow"
        tracking.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = f"sqlite:///{tracking / 'mlflow.db'}"
        self.artifacts = tracking / "artifacts"
        self.env = {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            **scaffold.DEVELOPER,
            "GITHUB_REPOSITORY": REPOSITORY,
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

    def in_project(self, checkout: Path):
        return _chdir(checkout / PROJECT)

    # --- the story ----------------------------------------------------------------------------

    def setup(self) -> None:
        self.say("A repository: the example project, a bare origin, a DVC remote and an MLflow store")
        self.repo = scaffold.Repo.create(self.root, dev="developer", env=self.env)
        scaffold.copy_example(self.repo.project)
        self.remote.mkdir()
        self.repo.set_remote(str(self.remote))
        from . import tracking

        tracking.Tracker().experiment_id(self.experiment, artifact_location=self.artifacts.as_uri())
        print(f"    origin {self.repo.origin}\n    DVC remote {self.remote}\n    MLflow {self.tracking_uri}")

    def developer_trains(self, message: str) -> str:
        self.repo.train()  # a laptop run, not logged to MLflow
        self.repo.push_data()
        return self.repo.commit(message, push=None)

    def rebuild(self, name: str, **kwargs) -> "object":
        from . import rebuild

        checkout = self.repo.clone(name)
        with self.in_project(checkout):
            result = rebuild.run(rebuild.RebuildInputs(project_dir=Path("."), repository=REPOSITORY, actor="lockstep-demo", **kwargs))
        self.repo.git("pull", "-q", "--rebase", "origin", "main")
        print(
            f"    stages {', '.join(result.stages)}; "
            f"{'committed ' + result.lock_commit[:12] if result.committed else 'dvc.lock unchanged, no commit'}; "
            f"{result.model_name} v{result.model_version} @{result.model_alias}{' + ' + self.champion if result.promoted else ''}"
        )
        self.rows.append((name, f"v{result.model_version}" + (f" ({self.champion})" if result.promoted else "")))
        return result

    def run(self) -> None:
        from . import report as reportmod, rollback, tracking, validate

        self.setup()

        self.say("The developer trains the first model on a laptop, pushes data and model, commits dvc.lock")
        first = self.developer_trains("First model")
        self.repo.git("push", "-q", "origin", "main")
        print(f"    main at {first[:12]}")

        self.say("Main rebuild: CI retrains from the inputs, pushes, commits back, registers")
        self.rebuild("ci-main-1", trigger="push")

        self.say("A pull request: more trees (train.n_estimators 100 -> 200), trained and pushed by the developer")
        base, head = scaffold.open_pr(self.repo, "more-trees", "n_estimators: 100", "n_estimators: 200", "More trees")

        self.say("PR validation in a fresh shallow clone: lock vs code, lock vs remote, re-evaluation, gates, MLflow")
        checkout = self.repo.clone("ci-pr", branch="more-trees", depth=1)
        with self.in_project(checkout):
            result = validate.run(validate.ValidateInputs(
                project_dir=Path("."), base_sha=base, head_sha=head, pr_number="1",
                repository=REPOSITORY, report_dir=self.root / "pr-report",
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
        self.repo.checkout("main")
        self.repo.git("merge", "-q", "--no-ff", "-m", "Merge pull request #1 from more-trees", "more-trees")
        self.repo.git("push", "-q", "origin", "main")
        self.rebuild("ci-main-2", trigger="push")

        self.say("workflow_dispatch retrain with a changed param (train.max_depth=4): a [skip ci] commit and a new version")
        self.rebuild("ci-dispatch", trigger="workflow_dispatch", set_params=["train.max_depth=4"], reason="try shallower trees")

        self.say(f"Rollback: move '{self.champion}' back to version 2 and say how to restore it")
        tracker = tracking.Tracker()
        back = rollback.rollback(tracker, self.model, self.champion, "2", actor="lockstep-demo", reason="demo rollback")
        print(f"    {self.champion}: v{back.previous} -> v{back.version}; restore with: {back.restore}")
        self.rows.append(("rollback", f"{self.champion} v{back.previous} -> v{back.version}"))
        self.summary(tracker)

    def summary(self, tracker) -> None:
        model = self.model
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
        log = self.repo.git("log", "--format=%h %an: %s", "-8", "origin/main")
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
    _check_environment()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lockstep-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise LockstepError(f"{root}: the demo needs an empty folder", hint="pass an empty or new --workdir")
    gha.info(f"lockstep demo in {root}")
    demo = Demo(root)
    demo.run()
    return 0
