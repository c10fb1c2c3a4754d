"""This repository's self-test (.github/workflows/self-test.yml), the workflow GitHub's runners run on
every pull request and push, run here under act with the same harness and stand-ins as the consumer
tests: its `$/` self-references resolve to this working tree (tests/actrunner.py rewrites exactly
`$/` and `queue: max` in a copy), its secrets are the LOCKSTEP_SELF_TEST_* names a maintainer sets,
and example-project/ sits at the repository root as it does here. Assertions are on the world
afterwards: the comment the API received, the registry, the commits on the bare origin, the
attestation the stand-in wrote. The push path is also the consumer's pattern for approved
promotions (main-rebuild.yml with `promote: false`, then promote.yml and attest.yml as jobs of its
own), so no second act run repeats it."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
import yaml

from actrunner import REPOSITORY, pr_payload, push_payload, rewrite, run_env
from conftest import PROJECT, ROOT, git
from github_api import TOKEN

SELF_TEST = ROOT / ".github" / "workflows" / "self-test.yml"
ACT_RUN_ID = 1  # github.run_id under act


def _configured_script(mlflow_secret: str, tmp_path) -> tuple[subprocess.CompletedProcess, str]:
    doc = yaml.safe_load(SELF_TEST.read_text())
    (step,) = doc["jobs"]["configured"]["steps"]
    output = tmp_path / f"output-{bool(mlflow_secret)}"
    output.touch()
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "SELF_TEST_MLFLOW": mlflow_secret})
    return proc, output.read_text()


def test_self_test_says_it_is_skipped_without_its_secret(tmp_path):
    """Without LOCKSTEP_SELF_TEST_MLFLOW_TRACKING_URI (a fork, a fresh clone) the configured job
    passes, says why the rest is skipped, and every job that would need the secret waits on it."""
    proc, output = _configured_script("", tmp_path)
    assert proc.returncode == 0 and output == "ready=false\n"
    assert proc.stdout.startswith("::notice title=self-test skipped::set the LOCKSTEP_SELF_TEST_* secrets")
    proc, output = _configured_script("https://mlflow.example", tmp_path)
    assert proc.returncode == 0 and output == "ready=true\n" and proc.stdout == ""
    jobs = yaml.safe_load(SELF_TEST.read_text())["jobs"]
    for name, job in jobs.items():
        if name == "configured":
            continue
        needs = [job["needs"]] if isinstance(job["needs"], str) else job["needs"]
        assert "configured" in needs or all("configured" in (jobs[n]["needs"]) for n in needs), name


def _self_test_secrets(mlflow_url: str) -> dict[str, str]:
    from actrunner import SECRET_KEY

    values = {"LOCKSTEP_SELF_TEST_AWS_ACCESS_KEY_ID": "testing", "LOCKSTEP_SELF_TEST_AWS_SECRET_ACCESS_KEY": SECRET_KEY,
              "GITHUB_TOKEN": TOKEN}
    if mlflow_url:
        values["LOCKSTEP_SELF_TEST_MLFLOW_TRACKING_URI"] = mlflow_url
    return values


@pytest.mark.e2e
@pytest.mark.integration
def test_self_test_pull_request_and_push_paths_under_act(consumer, act, api, mlflow_env):
    from mlflow import MlflowClient

    from lockstep import registry, tracking

    # this repository's layout: the self-test workflow, example-project/ at the root
    workflows = consumer.dev / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "self-test.yml").write_text(rewrite(SELF_TEST.read_text()))
    base = consumer.commit("self-test workflow")

    # a pull request from a branch of this repository: retrained, pushed to DVC
    git("checkout", "-q", "-b", "feature", cwd=consumer.dev)
    consumer.set_param("n_estimators: 100", "n_estimators: 150")
    consumer.dvc("repro")
    consumer.dvc("push")
    head = consumer.commit("More trees", push="feature")

    # without the MLflow secret every job but `configured` is skipped: nothing posted or logged
    skipped = act.run(consumer.dev, "pull_request", "self-test.yml", payload=pr_payload(21, base, head),
                      secrets=_self_test_secrets(""), env=run_env(consumer, api))
    assert skipped.returncode == 0, skipped.log[-6000:]
    assert api.comment_objects(REPOSITORY, 21) == [] and not (act.artifacts / "lockstep-report-example-project").exists()

    # the pull_request path: pr-validate.yml through `$/`, the comment from the PR's own run
    result = act.run(consumer.dev, "pull_request", "self-test.yml", payload=pr_payload(21, base, head),
                     secrets=_self_test_secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]
    (body,) = [c["body"] for c in api.comment_objects(REPOSITORY, 21)]
    assert body.startswith(f"<!-- lockstep:report project={PROJECT} -->\n## ✅ lockstep: example\\-project passed validation")
    assert "| train.n\\_estimators | 100 | 150 |" in body
    client = MlflowClient(mlflow_env.url)
    assert client.search_model_versions(f"name='{consumer.model}'") == []  # a PR registers nothing
    assert consumer.origin_log("feature")[0].startswith(head)  # and pushes nothing

    # the push path: a merge on main whose lock was not retrained; main-rebuild.yml rebuilds every
    # stage, commits the lock back, registers; promote.yml promotes through the environment after
    # its reviewer's approval; attest.yml attests the model
    git("checkout", "-q", "main", cwd=consumer.dev)
    consumer.set_param("max_depth: 6", "max_depth: 5")
    merged = consumer.commit("Merge pull request #22 from octo/shallower")
    api.review(REPOSITORY, ACT_RUN_ID, "dana", "looks good", environment="lockstep-self-test")
    result = act.run(consumer.dev, "push", "self-test.yml", payload=push_payload(merged),
                     secrets=_self_test_secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]

    lock_commit, parent = consumer.origin_log()[:2]
    assert parent.startswith(merged) and lock_commit.endswith("[skip ci]")
    assert "lockstep: rebuild prepare, train, evaluate" in lock_commit  # force-all: every stage
    (version,) = client.search_model_versions(f"name='{consumer.model}'")
    assert version.tags["lockstep.lock_commit"] == lock_commit.split()[0]
    assert client.get_model_version_by_alias(consumer.model, "candidate").version == version.version
    assert client.get_model_version_by_alias(consumer.model, "champion").version == version.version
    moves = registry.read_history(tracking.Tracker(), consumer.model)
    assert [(m.alias, m.by) for m in moves] == [("candidate", "rebuild"), ("champion", "promotion")]
    assert moves[1].reason == "lockstep self-test (environment lockstep-self-test)"
    assert (moves[1].approved_by, moves[1].approval) == ("dana", "approved by dana: looks good")
    assert moves[1].commit == version.tags["lockstep.lock_commit"]
    assert version.tags["lockstep.promotion.environment"] == "lockstep-self-test"
    assert version.tags["lockstep.promotion.approved_by"] == "dana"
    assert "promotion to `champion` waits for approval" in version.description
    # the promote job's token read the review history of its own run
    (reviews,) = [r for r in api.requests if r.path.endswith("/approvals")]
    assert reviews.path == f"/repos/{REPOSITORY}/actions/runs/{ACT_RUN_ID}/approvals"
    (bundle,) = (act.artifacts / "attestations").iterdir()
    assert yaml.safe_load(bundle.read_text())["subject"] == {
        "name": f"{PROJECT}/models/model.pkl", "digest": "sha256:" + version.tags["lockstep.model_sha256"]}
    # the attested digest is the one of the model CI pushed to the DVC remote
    git("pull", "-q", "origin", "main", cwd=consumer.dev)
    consumer.dvc("pull", "models/model.pkl")
    assert hashlib.sha256((consumer.project / "models" / "model.pkl").read_bytes()).hexdigest() == version.tags["lockstep.model_sha256"]
