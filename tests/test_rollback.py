"""Rollback against the MLflow registry: lineage checked, alias moved, who and why recorded."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from lockstep.errors import EXIT_OK, EXIT_USAGE

from conftest import PROJECT, lockstep
from test_rebuild import rebuild

pytestmark = pytest.mark.integration


def test_rollback_moves_the_alias_back_and_records_why(consumer, mlflow_env):
    proc, first = rebuild(consumer.clone("ci-1"))
    assert proc.returncode == EXIT_OK, proc.stdout
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower")
    proc, second = rebuild(consumer.clone("ci-2"))
    assert proc.returncode == EXIT_OK, proc.stdout
    client = MlflowClient(mlflow_env.url)
    client.set_registered_model_alias(consumer.model, "champion", second["model-version"])
    # a version registered by hand, without lineage: refused as a rollback target
    run = client.create_run("0")
    hand = client.create_model_version(consumer.model, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    outputs = consumer.root / "rollback-outputs.txt"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), "GITHUB_ACTOR": "oncall"}
    proc = lockstep("rollback", "--working-directory", PROJECT, "--version", str(hand.version), "--reason", "bad",
                    cwd=consumer.dev, env=env)
    assert proc.returncode == EXIT_USAGE
    assert "has no lockstep lineage" in proc.stdout
    assert client.get_model_version_by_alias(consumer.model, "champion").version == second["model-version"]

    proc = lockstep("rollback", "--working-directory", PROJECT, "--reason", "latency regression", cwd=consumer.dev, env=env)
    assert proc.returncode == EXIT_OK, proc.stdout
    assert client.get_model_version_by_alias(consumer.model, "champion").version == first["model-version"]
    tags = client.get_model_version(consumer.model, first["model-version"]).tags
    assert tags["lockstep.rollback.by"] == "oncall" and tags["lockstep.rollback.reason"] == "latency regression"
    assert tags["lockstep.rollback.from_version"] == second["model-version"]
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    assert values["lock-commit"] == first["lock-commit"]
    assert f"git checkout {first['lock-commit']} && dvc checkout" in proc.stdout


def test_rollback_needs_a_reason(consumer, mlflow_env):
    proc = lockstep("rollback", "--working-directory", PROJECT, cwd=consumer.dev)
    assert proc.returncode == EXIT_USAGE
    assert "a rollback needs a reason" in proc.stderr + proc.stdout
