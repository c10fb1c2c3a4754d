"""The ingestion-stage pattern for data DVC cannot see (README, Retraining from outside the
repository): an `always_changed: true` stage copies the newest export from outside the
repository. Pull requests are not stale because of it; a forced retrain on unchanged data commits
nothing; on new data the lock commit names the changed output."""

from __future__ import annotations

import random

import pytest

from lockstep.errors import EXIT_OK

from conftest import git, lockstep
from test_shapes import Shape, make_repo, open_pr, validate

pytestmark = pytest.mark.integration
INGEST = Shape("ingest-external")


def export(path, seed: int, size: int = 300) -> None:
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        x = rng.random()
        rows.append(f"{x:.6f},{int(x + rng.gauss(0, 0.1) > 0.6)}")
    path.write_text("\n".join(rows) + "\n")


def test_new_data_from_outside_is_visible_to_dvc_and_to_the_lock_commit(tmp_path, monkeypatch):
    source = tmp_path / "bucket" / "latest.csv"
    source.parent.mkdir()
    export(source, seed=1)
    monkeypatch.setenv("INGEST_SOURCE", str(source))  # where the data pipeline leaves its export
    repo = make_repo(INGEST, tmp_path)

    # a pull request is not stale because the ingestion stage always runs
    base, head, checkout = open_pr(repo, "better", steps=50)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:]
    assert checks["lock-vs-code"]["status"] == "pass"

    def retrain(name: str, reason: str):
        return lockstep("rebuild", "--working-directory", "ml", "--stages", "ingest", "--register", "false",
                        "--reason", reason, cwd=repo.clone(name), env={"GITHUB_ACTIONS": "true"})

    # the same export again: DVC hashes the same data, so nothing downstream changes
    before = git("rev-parse", "main", cwd=repo.origin)
    proc = retrain("ci-same", "nightly")
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:]
    assert git("rev-parse", "main", cwd=repo.origin) == before
    assert "nothing was committed" in proc.stdout

    # a new export: the lock commit says which output changed, and why the retrain ran
    export(source, seed=2, size=400)
    proc = retrain("ci-new", "new data 2026-12-01")
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:]
    message = git("log", "-1", "--format=%B", "main", cwd=repo.origin)
    assert "Changed: ml/data/raw.csv (modified)" in message or "Changed: data/raw.csv (modified)" in message, message
    assert "Reason: new data 2026-12-01" in message
