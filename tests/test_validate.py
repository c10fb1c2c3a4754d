"""PR validation against a real DVC repo, the S3 server and the MLflow server (integration)."""

from __future__ import annotations

import json

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_OK

from conftest import PROJECT, git, lockstep, servers

pytestmark = pytest.mark.integration


def open_pr(consumer, change=None, *, train=True, branch="feature"):
    """The developer branches, changes something, re-trains, pushes to DVC and git."""
    base = git("rev-parse", "HEAD", cwd=consumer.dev)
    git("checkout", "-q", "-b", branch, cwd=consumer.dev)
    if change:
        change(consumer)
    if train:
        consumer.dvc("repro")
        consumer.dvc("push")
    head = consumer.commit("PR change", push=branch)
    checkout = consumer.clone(f"ci-{branch}", branch=branch, depth=1)
    return base, head, checkout


def validate(checkout, base, head, *extra, env=None):
    outputs = checkout.parent / f"{checkout.name}-outputs.txt"
    summary = checkout.parent / f"{checkout.name}-summary.md"
    environment = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary), **(env or {})}
    proc = lockstep(
        "validate", "--working-directory", PROJECT, "--base-sha", base, "--head-sha", head,
        "--pr-number", "12", "--report-dir", str(checkout.parent / f"{checkout.name}-report"), *extra,
        cwd=checkout, env=environment,
    )
    results = json.loads((checkout.parent / f"{checkout.name}-report" / "results.json").read_text())
    checks = {c["id"]: c for c in results["checks"]}
    return proc, results, checks, outputs.read_text(), summary.read_text()


def more_trees(consumer):
    consumer.set_param("n_estimators: 100", "n_estimators: 150")


def test_happy_path_logs_to_mlflow_and_reports(consumer, mlflow_env):
    base, head, checkout = open_pr(consumer, more_trees)
    proc, results, checks, outputs, summary = validate(checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert results["passed"] is True
    assert [checks[k]["status"] for k in ("lock-vs-code", "lock-vs-remote", "pull", "re-evaluation", "base", "gates", "mlflow")] == ["pass"] * 7
    assert "passed=true" in outputs
    assert "report-path=" in outputs
    assert "## ✅ lockstep: example\\-project passed validation" in summary
    assert "| train.n\\_estimators | 100 | 150 |" in summary
    # the run in MLflow carries the PR's lineage
    from mlflow import MlflowClient

    run = MlflowClient(mlflow_env.url).get_run(results["mlflow_run_id"])
    assert run.data.tags["lockstep.pr"] == "12"
    from lockstep import __version__

    assert run.data.tags["lockstep.version"] == __version__
    assert run.data.tags["lockstep.head_sha"] == head
    assert run.data.tags["lockstep.base_sha"] == base
    assert run.data.params["train.n_estimators"] == "150"
    assert run.data.metrics["accuracy"] == pytest.approx(results["metrics"][0]["pr"])
    # only what evaluation needs was pulled: the model and the prepared data, nothing else
    assert (checkout / PROJECT / "models" / "model.pkl").exists()


def test_stale_lock_names_stage_param_and_fix(consumer):
    base, head, checkout = open_pr(consumer, more_trees, train=False)
    proc, results, checks, outputs, _ = validate(checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED
    assert "passed=false" in outputs
    summary = checks["lock-vs-code"]["summary"]
    assert "stage 'train' would re-run because params.yaml:train.n_estimators changed (100 -> 150)" in summary
    assert "Run `dvc repro --downstream train" in summary
    assert checks["re-evaluation"]["status"] == "skip"
    # the committed metrics pass the gates, but nothing verified them: no pass is given on them
    assert checks["gates"]["status"] == "skip"
    assert checks["gates"]["summary"].startswith("not judged: the metrics are the committed ones, which CI could not verify")
    assert all(row["gate"] is None for row in results["metrics"])
    assert "::error title=lockstep%3A dvc.lock vs code::dvc.lock is stale" in proc.stdout


def test_object_missing_inside_directory_output(consumer):
    base, head, checkout = open_pr(consumer, more_trees)
    keys = [k for k in consumer.bucket.keys("dvc/files/md5/") if not k.endswith(".dir")]
    lock = (checkout / PROJECT / "dvc.lock").read_text()
    # one file inside data/prepared (a directory output): find it through the .dir listing
    listing_key = next(k for k in consumer.bucket.keys("dvc/files/md5/") if k.endswith(".dir"))
    listing = json.loads(consumer.bucket.client.get_object(Bucket=consumer.bucket.name, Key=listing_key)["Body"].read())
    member = next(e for e in listing if e["relpath"] == "test.csv")
    victim = f"dvc/files/md5/{member['md5'][:2]}/{member['md5'][2:]}"
    assert victim in keys and "data/prepared" in lock
    consumer.bucket.client.delete_object(Bucket=consumer.bucket.name, Key=victim)
    proc, results, checks, _, _ = validate(checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED
    remote = checks["lock-vs-remote"]
    assert remote["status"] == "fail"
    assert "data/prepared" in remote["summary"] and "Run `dvc push`" in remote["summary"]
    assert remote["details"] == ["data/prepared: test.csv"]
    assert checks["pull"]["status"] == "skip"


def test_hand_edited_metrics_are_caught(consumer):
    def edit(c):
        more_trees(c)
        c.dvc("repro")
        c.dvc("push")
        metrics = c.project / "metrics.json"
        data = json.loads(metrics.read_text())
        data["accuracy"] = 0.999
        metrics.write_text(json.dumps(data))

    base, head, checkout = open_pr(consumer, edit, train=False)
    proc, results, checks, _, _ = validate(checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED
    check = checks["re-evaluation"]
    assert check["status"] == "fail"
    assert "accuracy: committed 0.999, recomputed 0.958042" in check["details"]
    # the gates are judged on the recomputed value, not the edited one
    row = next(r for r in results["metrics"] if r["name"] == "accuracy")
    assert row["pr"] == pytest.approx(0.958042)


def test_failing_gate_shows_metric_value_threshold_and_base(consumer):
    def worse(c):
        c.set_param("max_depth: 6", "max_depth: 1")
        c.set_param("n_estimators: 100", "n_estimators: 2")

    base, head, checkout = open_pr(consumer, worse)
    proc, results, checks, _, summary = validate(checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED
    gates = checks["gates"]
    assert gates["status"] == "fail"
    accuracy = next(r for r in results["metrics"] if r["name"] == "accuracy")
    assert accuracy["gate"] == "fail"
    assert any("vs base 0.951049 (allowed 0.02)" in reason for reason in accuracy["gate_reasons"])
    assert "## ❌ lockstep: example\\-project failed validation (gates)" in summary


def test_mlflow_down_still_completes_and_says_why(consumer, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{servers.free_port()}")
    base, head, checkout = open_pr(consumer, more_trees)
    proc, results, checks, _, _ = validate(checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout
    assert checks["mlflow"]["status"] == "warn"
    assert checks["mlflow"]["summary"].startswith("the run was not logged: MLflow")
    assert results["mlflow_run_id"] == ""


def test_failing_project_tests_stop_before_evaluation(consumer):
    base, head, checkout = open_pr(consumer, more_trees)
    proc, results, checks, _, _ = validate(checkout, base, head, "--test-command", "python -c 'raise SystemExit(3)'")
    assert proc.returncode == EXIT_CHECKS_FAILED
    assert checks["tests"]["status"] == "fail"
    assert "exited with 3" in checks["tests"]["summary"]
    assert "re-evaluation" not in checks


def test_remote_without_credentials_is_a_failed_check_with_a_report(consumer):
    """What a fork's run meets: no AWS credentials at all. The job still writes its report (the
    fork-safe workflow posts it) instead of stopping without one."""
    base, head, checkout = open_pr(consumer, more_trees)
    no_credentials = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                      "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
    proc, results, checks, outputs, _ = validate(checkout, base, head, env=no_credentials)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout
    remote = checks["lock-vs-remote"]
    assert remote["status"] == "fail"
    assert f"could not reach the DVC remote s3://{consumer.bucket.name}/dvc: NoCredentialsError" in remote["summary"]
    assert "a maintainer can push the branch to this repository" in remote["summary"]
    assert checks["pull"]["status"] == "skip" and results["passed"] is False
    assert "report-dir=" in outputs
