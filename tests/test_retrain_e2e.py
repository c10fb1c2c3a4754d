"""End to end: retrains started from outside the repository run the real main-rebuild.yml under
act through the consumer workflow example-project/workflows/ml-retrain.yml: a repository_dispatch
event with a client_payload, and a schedule event. Assertions are on the world afterwards: the
commit on the bare origin and the model version in the registry."""

from __future__ import annotations

import os
import uuid

import pytest

from actrunner import REPOSITORY_OBJECT, install_workflows, run_env, secrets
from conftest import git

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def last_message(consumer) -> str:
    return git("log", "-1", "--format=%B", "main", cwd=consumer.origin)


def test_repository_dispatch_payload_retrains_and_records_the_reason(consumer, act, api, mlflow_env):
    install_workflows(consumer)
    before = consumer.origin_log()
    canary = f"lockstep-canary-{uuid.uuid4().hex[:12]}"
    reason = f"new data 2026-12-01 $(touch /tmp/{canary})"
    payload = {"action": "retrain", "branch": "main", "repository": REPOSITORY_OBJECT,
               "client_payload": {"stages": ["prepare"], "set-params": {"train.n_estimators": 90}, "reason": reason}}
    result = act.run(consumer.dev, "repository_dispatch", "ml-retrain.yml", payload=payload,
                     secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]
    assert not os.path.exists(f"/tmp/{canary}"), "a payload value was executed"

    log = consumer.origin_log()
    assert len(log) == len(before) + 1 and log[1] == before[0]
    message = last_message(consumer)
    assert "Trigger: repository_dispatch" in message.splitlines()
    assert f"Reason: {reason}" in message.splitlines()
    assert "Set-param: train.n_estimators=90" in message.splitlines()
    params = git("show", "main:example-project/params.yaml", cwd=consumer.origin)
    assert "n_estimators: 90" in params
    from mlflow import MlflowClient

    (version,) = MlflowClient(mlflow_env.url).search_model_versions(f"name='{consumer.model}'")
    assert version.tags["lockstep.lock_commit"] == log[0].split()[0]
    assert version.tags["lockstep.reason"] == reason
    assert version.tags["lockstep.trigger"] == "repository_dispatch"


def test_repository_dispatch_with_a_bad_payload_changes_nothing(consumer, act, api, mlflow_env):
    install_workflows(consumer)
    before = consumer.origin_log()
    payload = {"action": "retrain", "branch": "main", "repository": REPOSITORY_OBJECT,
               "client_payload": {"reason": "new data", "force_all": True}}
    result = act.run(consumer.dev, "repository_dispatch", "ml-retrain.yml", payload=payload,
                     secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode != 0
    assert "dispatch payload: unknown key 'force_all'" in result.log
    assert consumer.origin_log() == before
    from mlflow import MlflowClient

    assert MlflowClient(mlflow_env.url).search_model_versions(f"name='{consumer.model}'") == []


def test_schedule_retrains_every_stage(consumer, act, api, mlflow_env):
    """A scheduled run forces every stage with the workflow's reason. The example's data and
    training are deterministic, so dvc.lock comes out the same: nothing to commit, and the CI-built
    model is registered against the current commit."""
    install_workflows(consumer)
    before = consumer.origin_log()
    payload = {"schedule": "17 3 * * *", "repository": REPOSITORY_OBJECT}
    result = act.run(consumer.dev, "schedule", "ml-retrain.yml", payload=payload,
                     secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]
    assert consumer.origin_log() == before
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_env.url)
    (version,) = client.search_model_versions(f"name='{consumer.model}'")
    assert version.tags["lockstep.lock_commit"] == before[0].split()[0]
    assert version.tags["lockstep.trigger"] == "schedule"
    run = client.get_run(version.run_id)
    assert run.data.tags["lockstep.reason"] == "nightly scheduled retrain"
    assert run.data.tags["lockstep.stages"].split() == ["prepare", "train", "evaluate"]  # force-all
