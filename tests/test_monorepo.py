"""Two DVC projects in one repository: validated in one PR, one comment each, one model each."""

from __future__ import annotations

import shutil

import pytest
from mlflow import MlflowClient

from conftest import PROJECT, git, lockstep
from github_api import TOKEN

pytestmark = pytest.mark.integration
SECOND = "ranking-project"


def test_two_projects_two_comments_two_models(consumer, api, mlflow_env, tmp_path):
    second = consumer.dev / SECOND
    shutil.copytree(consumer.project, second, ignore=shutil.ignore_patterns("cache", "tmp"))
    config = second / "lockstep.yaml"
    config.write_text(config.read_text().replace(f"name: {consumer.model}", f"name: {consumer.model}-ranking"))
    consumer.dvc("push", cwd=second)
    base = consumer.commit("A second DVC project")

    # a PR that touches both projects (each is validated, commented on and rebuilt on its own; the
    # developer's retrain is not what this test is about: tests/test_validate.py)
    git("checkout", "-q", "-b", "feature", cwd=consumer.dev)
    for folder in (consumer.project, second):
        (folder / "NOTES.md").write_text("Owners: the ranking team.\n")
    head = consumer.commit("Notes in both", push="feature")
    checkout = consumer.clone("ci-pr", branch="feature", depth=1)

    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "octo/ml", "INPUT_GITHUB_TOKEN": TOKEN}
    for project in (PROJECT, SECOND):  # what the matrix over working-directory runs
        report = tmp_path / f"report-{project}"
        proc = lockstep("validate", "--working-directory", project, "--base-sha", base, "--head-sha", head,
                        "--pr-number", "21", "--report-dir", str(report), cwd=checkout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = lockstep("comment", "--report-dir", str(report), cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    bodies = [c["body"] for c in api.comment_objects("octo/ml", 21)]
    assert [b.splitlines()[0] for b in bodies] == [
        f"<!-- lockstep:report project={PROJECT} -->", f"<!-- lockstep:report project={SECOND} -->"]

    git("checkout", "-q", "main", cwd=consumer.dev)
    git("merge", "-q", "--no-ff", "-m", "Merge #21", "feature", cwd=consumer.dev)
    git("push", "-q", "origin", "main", cwd=consumer.dev)
    client = MlflowClient(mlflow_env.url)
    for project, model in ((PROJECT, consumer.model), (SECOND, f"{consumer.model}-ranking")):
        proc = lockstep("rebuild", "--working-directory", project, "--branch", "main", cwd=consumer.clone(f"ci-{project}"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (version,) = client.search_model_versions(f"name='{model}'")
        assert version.tags["lockstep.project"] == project
