"""The example project against the real S3 server and MLflow server (integration)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import BIN, EXAMPLE, run

pytestmark = pytest.mark.integration


def test_repro_from_clean_produces_metrics_and_plots(trained_example):
    metrics = json.loads((trained_example / "metrics.json").read_text())
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert metrics["accuracy"] > 0.9
    rows = (trained_example / "plots" / "confusion.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 144  # the 143 test rows
    assert (trained_example / "dvc.lock").exists() and not (EXAMPLE / "dvc.lock").exists()


def test_push_then_pull_after_wiping_the_cache_restores_outputs(consumer):
    model = consumer.project / "models" / "model.pkl"
    original = model.read_bytes()
    shutil.rmtree(consumer.project / ".dvc" / "cache")
    shutil.rmtree(consumer.project / "data" / "prepared")
    model.unlink()
    consumer.dvc("pull")
    assert model.read_bytes() == original
    assert sorted(p.name for p in (consumer.project / "data" / "prepared").iterdir()) == ["test.csv", "train.csv"]
    assert any(key.endswith(".dir") for key in consumer.bucket.keys("dvc/files/md5/"))


def test_training_logs_to_mlflow_only_when_asked(consumer, mlflow_env):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_env.url)
    experiment = client.create_experiment(f"example-{consumer.bucket.name}")
    parent = client.create_run(experiment)
    env = {"MLFLOW_TRACKING_URI": mlflow_env.url, "LOCKSTEP_MLFLOW_RUN_ID": parent.info.run_id}
    run(str(BIN / "python"), "src/train.py", cwd=consumer.project, env=env)
    logged = client.get_run(parent.info.run_id)
    assert logged.data.params["train.n_estimators"] == "100"
    assert logged.data.metrics["train_accuracy"] > 0.9
    models = client.search_logged_models(experiment_ids=[experiment])
    assert [m.name for m in models] == ["model"]
    # without MLflow settings it logs nothing and still trains
    proc = run(str(BIN / "python"), "src/train.py", cwd=consumer.project, env={"MLFLOW_TRACKING_URI": "", "LOCKSTEP_MLFLOW_RUN_ID": ""})
    assert "trained 100 trees" in proc.stdout
