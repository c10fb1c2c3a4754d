"""`lockstep demo`, the README's first command, end to end, asserting the final state."""

from __future__ import annotations

import pytest

from conftest import git, lockstep

pytestmark = pytest.mark.integration


def test_demo_tells_the_whole_story(tmp_path):
    workdir = tmp_path / "demo"
    proc = lockstep("demo", "--workdir", str(workdir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = git("log", "--format=%an|%s", "main", cwd=workdir / "origin.git").splitlines()
    assert log[0].startswith("github-actions[bot]|lockstep: rebuild train, evaluate on ")
    assert log[0].endswith("[skip ci]")
    assert [line.split("|")[1] for line in log[1:]] == ["Merge pull request #1 from more-trees", "More trees", "First model"]
    comment = (workdir / "pr-comment.md").read_text()
    assert comment.startswith("<!-- lockstep:report project=example-project -->\n## ✅ lockstep")
    assert "| train.n\\_estimators | 100 | 200 |" in comment

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}")
    versions = {str(v.version): v for v in client.search_model_versions("name='breast-cancer-classifier'")}
    assert sorted(versions) == ["1", "2", "3"]
    aliases = {k: str(v) for k, v in client.get_registered_model("breast-cancer-classifier").aliases.items()}
    assert aliases == {"candidate": "3", "champion": "2"}
    assert versions["2"].tags["lockstep.rollback.reason"] == "demo rollback"
    assert versions["3"].tags["lockstep.trigger"] == "workflow_dispatch"
    assert "Open the MLflow UI: mlflow ui --backend-store-uri sqlite:///" in proc.stdout
