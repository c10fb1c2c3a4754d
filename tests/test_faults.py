"""Faults during a main rebuild, through the CLI against a bare origin, a DVC remote and the real
MLflow registry: MLflow failing at each step, the push refused, the remote failing mid-push.
After each: no lock commit on origin without its data in the remote, no model version without a
lock commit, no MLflow run left RUNNING, and a re-run that completes once the fault is gone."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lockstep import dvcrepo
from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_DVC, EXIT_GIT, EXIT_MLFLOW, EXIT_OK

from conftest import PROJECT, git, lockstep
from faultproxy import ACCESS_DENIED, FaultProxy
from servers import free_port
from test_shapes import SHAPES, make_repo, open_pr, validate

pytestmark = pytest.mark.integration
SHAPE = SHAPES[1]  # cached-stage-metrics: three small stages, metrics in DVC's cache, no MLflow in its code


def rebuild(checkout: Path, folder: str, experiment: str, *extra: str, env: dict[str, str] | None = None):
    outputs = checkout.parent / f"{checkout.name}-outputs.txt"
    summary = checkout.parent / f"{checkout.name}-summary.md"
    proc = lockstep("rebuild", "--working-directory", folder, "--branch", "main", "--mlflow-experiment", experiment,
                    *extra, cwd=checkout,
                    env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary),
                         **(env or {})})
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line) if outputs.exists() else {}
    return proc, values, summary.read_text() if summary.exists() else ""


def assert_consistent(origin: Path, clone: Path, folder: str, tracking_url: str, model: str, experiment: str) -> None:
    """The invariants every fault must leave."""
    # the lock on origin's main has all its objects in the remote
    repo = dvcrepo.open_repo(clone / folder)
    check = dvcrepo.verify_remote(repo)
    assert check.ok, check.missing_outputs()
    client = MlflowClient(tracking_url)
    # every model version names a lock commit that origin has
    for version in client.search_model_versions(f"name='{model}'"):
        commit = version.tags.get("lockstep.lock_commit", "")
        assert commit and git("cat-file", "-t", commit, cwd=origin, check=False) == "commit", version
    # no run left RUNNING
    experiment_id = client.get_experiment_by_name(experiment).experiment_id if client.get_experiment_by_name(experiment) else None
    if experiment_id:
        running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
        assert running == [], [(r.info.run_id, r.info.status) for r in running]


def versions(url: str, model: str) -> list:
    return sorted(MlflowClient(url).search_model_versions(f"name='{model}'"), key=lambda v: int(v.version))


def _pushed(origin: Path, before: str):
    return lambda: git("rev-parse", "main", cwd=origin) != before


# (name, rule factory (pushed -> rule), after, fails before the push)
MLFLOW_FAULTS = [
    ("run-creation", lambda pushed: lambda m, p: (503, b"down") if "runs/create" in p else None, False, True),
    ("metrics-logging", lambda pushed: lambda m, p: (503, b"down") if "log-batch" in p and not pushed() else None, False, True),
    ("lineage-logging", lambda pushed: lambda m, p: (503, b"down") if "log-batch" in p and pushed() else None, False, False),
    ("registration", lambda pushed: lambda m, p: (503, b"down") if "model-versions/create" in p else None, False, False),
    ("alias", lambda pushed: lambda m, p: (503, b"down") if m == "POST" and p.endswith("registered-models/alias") else None, False, False),
]


@pytest.mark.parametrize(("name", "rule", "after", "early"), MLFLOW_FAULTS, ids=[f[0] for f in MLFLOW_FAULTS])
def test_mlflow_failing_at_each_step_leaves_a_state_a_rerun_completes(name, rule, after, early, tmp_path, mlflow_env):
    repo = make_repo(SHAPE, tmp_path)
    repo.set_steps(30)
    merged = repo.commit("thirty steps, lock left to CI")
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proxy = FaultProxy(mlflow_env.url, rule(_pushed(repo.origin, merged)), after=after)
    try:
        proc, _out, summary = rebuild(repo.clone("ci-1"), "ml", experiment, env={"MLFLOW_TRACKING_URI": proxy.url})
    finally:
        proxy.close()
    assert proxy.hits, f"the {name} fault was never injected"
    assert proc.returncode == EXIT_MLFLOW, proc.stdout[-3000:]
    assert "MLflow" in summary and "re-run" in proc.stdout
    if early:  # refused before anything was pushed
        assert git("rev-parse", "main", cwd=repo.origin) == merged
    else:  # registration is after the push, by design: the version's lineage names the commit
        assert git("rev-parse", "main", cwd=repo.origin) != merged
    assert_consistent(repo.origin, repo.clone("after-fault"), "ml", mlflow_env.url, repo.model_name, experiment)

    proc, out, _summary = rebuild(repo.clone("ci-2"), "ml", experiment)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    head = git("rev-parse", "main", cwd=repo.origin)
    assert git("rev-list", "--count", f"{merged}..main", cwd=repo.origin) == "1"  # one lock commit, whichever run pushed it
    (version,) = versions(mlflow_env.url, repo.model_name)
    assert version.tags["lockstep.lock_commit"] == head == out["lock-commit"]
    assert MlflowClient(mlflow_env.url).get_model_version_by_alias(repo.model_name, "candidate").version == version.version
    assert_consistent(repo.origin, repo.clone("after-rerun"), "ml", mlflow_env.url, repo.model_name, experiment)


def test_a_lost_answer_to_run_creation_leaves_no_orphan_run(tmp_path, mlflow_env):
    """The server creates the run and the client hears 504: the run is found by its key and used,
    not created again and left RUNNING."""
    repo = make_repo(SHAPE, tmp_path)
    repo.set_steps(30)
    repo.commit("thirty steps")
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proxy = FaultProxy(mlflow_env.url, lambda m, p: (504, b"Gateway Timeout") if "runs/create" in p else None, after=True)
    try:
        proc, out, _summary = rebuild(repo.clone("ci"), "ml", experiment, env={"MLFLOW_TRACKING_URI": proxy.url})
    finally:
        proxy.close()
    assert len(proxy.hits) == 1, proxy.hits
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    client = MlflowClient(mlflow_env.url)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert [r.info.run_id for r in runs] == [out["mlflow-run-id"]] and runs[0].info.status == "FINISHED"
    assert_consistent(repo.origin, repo.clone("after"), "ml", mlflow_env.url, repo.model_name, experiment)


def test_mlflow_unreachable_fails_before_anything_is_pushed(tmp_path, mlflow_env):
    repo = make_repo(SHAPE, tmp_path)
    repo.set_steps(30)
    merged = repo.commit("thirty steps")
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proc, _out, _summary = rebuild(repo.clone("ci-1"), "ml", experiment,
                                   env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    assert proc.returncode == EXIT_MLFLOW, proc.stdout[-3000:]
    assert git("rev-parse", "main", cwd=repo.origin) == merged
    assert versions(mlflow_env.url, repo.model_name) == []
    proc, _out, _summary = rebuild(repo.clone("ci-2"), "ml", experiment)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert_consistent(repo.origin, repo.clone("after"), "ml", mlflow_env.url, repo.model_name, experiment)


def test_a_refused_push_ends_the_run_failed_registers_nothing_and_a_rerun_completes(tmp_path, mlflow_env):
    repo = make_repo(SHAPE, tmp_path)
    repo.set_steps(30)
    merged = repo.commit("thirty steps")
    hook = repo.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: pushes need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proc, _out, _summary = rebuild(repo.clone("ci-1"), "ml", experiment)
    assert proc.returncode == EXIT_GIT, proc.stdout[-3000:]
    assert "the server refused the push" in proc.stdout and "PUSH_TOKEN" in proc.stdout
    assert git("rev-parse", "main", cwd=repo.origin) == merged
    assert versions(mlflow_env.url, repo.model_name) == []
    client = MlflowClient(mlflow_env.url)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert_consistent(repo.origin, repo.clone("after-fault"), "ml", mlflow_env.url, repo.model_name, experiment)
    hook.unlink()
    proc, out, _summary = rebuild(repo.clone("ci-2"), "ml", experiment)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert out["committed"] == "true" and [v.version for v in versions(mlflow_env.url, repo.model_name)] == [out["model-version"]]
    assert_consistent(repo.origin, repo.clone("after"), "ml", mlflow_env.url, repo.model_name, experiment)


def test_the_remote_failing_mid_push_commits_nothing_and_a_rerun_completes(consumer, mlflow_env, monkeypatch):
    # new data and a new model: several objects to upload; the remote takes the first, then refuses
    consumer.set_param("test_size: 0.25", "test_size: 0.3")
    merged = consumer.commit("A larger test split")
    uploads: list[str] = []

    def rule(method: str, path: str):
        if method not in ("PUT", "POST"):
            return None
        uploads.append(path)
        return ACCESS_DENIED if len(uploads) > 1 else None

    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proxy = FaultProxy(consumer.bucket.endpoint, rule)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proc, _out, _summary = rebuild(consumer.clone("ci-1"), PROJECT, experiment, "--stages", "prepare")
    finally:
        proxy.close()
    assert proc.returncode == EXIT_DVC, proc.stdout[-3000:]
    assert len(uploads) > 1 and proxy.hits, uploads  # one upload went through, the next were refused
    assert git("rev-parse", "main", cwd=consumer.origin) == merged
    assert versions(mlflow_env.url, consumer.model) == []
    monkeypatch.setenv("AWS_ENDPOINT_URL", consumer.bucket.endpoint)
    assert_consistent(consumer.origin, consumer.clone("after-fault"), PROJECT, mlflow_env.url, consumer.model, experiment)
    proc, out, _summary = rebuild(consumer.clone("ci-2"), PROJECT, experiment, "--stages", "prepare")
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert out["committed"] == "true"
    assert_consistent(consumer.origin, consumer.clone("after"), PROJECT, mlflow_env.url, consumer.model, experiment)


# --- metric names MLflow refuses -----------------------------------------------------------------

ODD_NAMES = {"precision@k": 0.5, "top/../k": 0.25, "/lead": 0.75, "x//y": 1.0, "n" * 300: 0.125}


def test_metric_names_mlflow_refuses_are_made_valid_before_the_push(tmp_path, mlflow_env):
    repo = make_repo(SHAPE, tmp_path)
    evaluate = repo.project / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace(
        '"acc": {"train": scores["train"], "test": scores["test"]}}',
        f'"acc": {{"train": scores["train"], "test": scores["test"]}}, **{ODD_NAMES!r}}}'))
    repo.commit("ranking metrics")
    experiment = f"names-{uuid.uuid4().hex[:8]}"
    proc, out, _summary = rebuild(repo.clone("ci"), "ml", experiment)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert out["committed"] == "true" and out["model-version"] == "1"
    client = MlflowClient(mlflow_env.url)
    tags = client.get_model_version(repo.model_name, "1").tags
    run = client.get_run(out["mlflow-run-id"])
    expected = {"precision_k": 0.5, "top/__/k": 0.25, "_/lead": 0.75, "x/_/y": 1.0}
    for name, value in expected.items():
        assert float(tags[f"lockstep.metric.{name}"]) == value and run.data.metrics[name] == value
    long_tag = next(key for key in tags if key.startswith("lockstep.metric.nnn"))
    assert len(long_tag) == 250 and run.data.metrics["n" * 250] == 0.125


# --- regression gates need the base -------------------------------------------------------------


def test_a_base_the_origin_does_not_have_is_not_a_pass(tmp_path):
    repo = make_repo(SHAPES[0], tmp_path)
    _base, head, checkout = open_pr(repo, "better", steps=50)
    missing = "0123456789abcdef" * 2 + "01234567"
    proc, results, checks = validate(repo, checkout, missing, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    assert results["passed"] is False
    assert checks["config"]["status"] == "fail" and checks["base"]["status"] == "fail"
    assert f"the base commit {missing[:12]} cannot be read" in checks["config"]["summary"]
    assert missing[:12] in checks["base"]["summary"]
