"""Main rebuilds against a bare origin, the S3 server and the MLflow registry (integration)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from lockstep import gitrepo
from lockstep.errors import EXIT_DVC, EXIT_INPUTS_MOVED, EXIT_OK

from conftest import PROJECT, git, lockstep
from faultproxy import ACCESS_DENIED, FaultProxy

pytestmark = pytest.mark.integration
BOT = "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"


def rebuild(checkout, *extra, env=None):
    outputs = checkout.parent / f"{checkout.name}-outputs.txt"
    proc = lockstep("rebuild", "--working-directory", PROJECT, "--branch", "main", *extra, cwd=checkout,
                    env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), **(env or {})})
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line) if outputs.exists() else {}
    return proc, values


def versions(url, model):
    return sorted(MlflowClient(url).search_model_versions(f"name='{model}'"), key=lambda v: int(v.version))


def test_param_change_on_main_gives_one_skip_ci_commit_and_a_version(consumer, mlflow_env):
    # a change merged to main without a re-trained lock: CI's lock must differ
    consumer.set_param("max_depth: 6", "max_depth: 5")
    merged = consumer.commit("Shallower trees")
    before = consumer.bucket.keys()
    proc, out = rebuild(consumer.clone("ci-1"), "--reason", "merge of #3")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    log = consumer.origin_log()
    assert len(log) == 3
    sha, rest = log[0].split(" ", 1)
    assert rest.startswith(f"{BOT} lockstep: rebuild train, evaluate on {merged[:12]} [skip ci]")
    assert out["lock-commit"] == sha and out["committed"] == "true"
    # the lock on origin matches the code: no stage is stale
    fresh = consumer.clone("check")
    from lockstep import dvcrepo

    assert dvcrepo.stale_stages(dvcrepo.open_repo(fresh / PROJECT)) == []
    # only new objects were uploaded, and the new model is among them
    after = consumer.bucket.keys()
    assert set(before) < set(after)
    # the version, its lineage tags and its alias
    (version,) = versions(mlflow_env.url, consumer.model)
    assert out["model-version"] == version.version and out["model-alias"] == "candidate"
    assert version.tags["lockstep.lock_commit"] == sha
    assert version.tags["lockstep.stage"] == "train"
    assert version.tags["lockstep.dvc_object"].startswith(f"s3://{consumer.bucket.name}/dvc/files/md5/")
    assert version.tags["lockstep.dvc_object"].split("/files/md5/")[1].replace("/", "") == version.tags["lockstep.model_md5"]
    assert float(version.tags["lockstep.metric.accuracy"]) > 0.9
    assert version.tags["lockstep.model_source"] == "logged-model"  # the example's train.py logs it into the run
    assert "is the file" not in proc.stdout
    client = MlflowClient(mlflow_env.url)
    assert client.get_model_version_by_alias(consumer.model, "candidate").version == version.version
    assert client.get_model_version_by_alias(consumer.model, "champion").version == version.version
    run = client.get_run(out["mlflow-run-id"])
    assert run.data.params["train.max_depth"] == "5"  # logged by the project's own training code
    assert run.data.tags["lockstep.reason"] == "merge of #3"

    # the same job again: no commit, no version
    proc, again = rebuild(consumer.clone("ci-2"))
    assert proc.returncode == EXIT_OK, proc.stdout
    assert len(consumer.origin_log()) == 3
    assert again["committed"] == "false" and again["model-version"] == version.version
    assert len(versions(mlflow_env.url, consumer.model)) == 1


EXAMPLE_LOGGING = "        log_to_mlflow(model, params, train_accuracy, features)\n"


def train_logs(consumer, code: str, message: str, *, keep_example: bool = False) -> None:
    """The example's train.py with the team's own MLflow code instead of (or after) the example's
    logging into lockstep's run, merged with a param change for a rebuild to retrain."""
    train = consumer.project / "src" / "train.py"
    assert EXAMPLE_LOGGING in train.read_text()
    train.write_text(train.read_text().replace(EXAMPLE_LOGGING, (EXAMPLE_LOGGING if keep_example else "") + code))
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit(message)


def test_training_that_logs_to_an_experiment_of_its_own_rebuilds_and_registers(consumer, mlflow_env):
    """The pattern of most training code: `mlflow.set_experiment(...)` then `mlflow.start_run()`.
    The rebuild offers its run as LOCKSTEP_MLFLOW_RUN_ID, not as MLflow's own MLFLOW_RUN_ID, which
    `start_run()` would resume in lockstep's experiment and refuse after `set_experiment`."""
    experiment = f"team-{consumer.bucket.name}"
    train_logs(consumer, (  # the team's own logging instead of the example's
        "        import mlflow\n"
        f"        mlflow.set_experiment({experiment!r})\n"
        "        with mlflow.start_run(run_name='nightly'):\n            mlflow.log_metric('team_metric', 1.0)\n"),
        "Training logs to the team's experiment")
    proc, out = rebuild(consumer.clone("ci"))
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert out["committed"] == "true" and out["model-version"]
    client = MlflowClient(mlflow_env.url)
    (team_run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert team_run.data.metrics["team_metric"] == 1.0  # the team's own run, where its code put it
    assert team_run.info.run_id != out["mlflow-run-id"]


def test_training_that_sets_its_experiment_and_logs_into_lockstep_s_run_is_told_the_setting(consumer, mlflow_env):
    """`set_experiment("team")` then `start_run(run_id=LOCKSTEP_MLFLOW_RUN_ID)`: MLflow refuses a run
    of another experiment. The failure says which setting puts lockstep's run there, and with it
    the rebuild registers; before it, nothing was pushed or committed."""
    experiment = f"team-{consumer.bucket.name}"
    train_logs(consumer, (
        "        import mlflow\n"
        f"        mlflow.set_experiment({experiment!r})\n"
        "        with mlflow.start_run(run_id=os.environ.get('LOCKSTEP_MLFLOW_RUN_ID')):\n"
        "            mlflow.log_metric('team_metric', 1.0)\n"),
        "Training logs into lockstep's run, from its own experiment")
    proc, _ = rebuild(consumer.clone("ci"))
    assert proc.returncode == EXIT_DVC, proc.stdout[-4000:]
    message = proc.stdout.replace("%0A", "\n")
    assert "set `mlflow.experiment` in lockstep.yaml to the code's experiment" in message, message[-3000:]
    assert len(consumer.origin_log()) == 2 and versions(mlflow_env.url, consumer.model) == []
    config = consumer.project / "lockstep.yaml"
    config.write_text(config.read_text() + f"mlflow:\n  experiment: {experiment}\n")
    consumer.commit("lockstep's run in the team's experiment")
    proc, out = rebuild(consumer.clone("ci-again"))
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:]
    assert MlflowClient(mlflow_env.url).get_run(out["mlflow-run-id"]).data.metrics["team_metric"] == 1.0
    # this code logs no model into the run: the version is the file as it is, and the rebuild says so
    (version,) = versions(mlflow_env.url, consumer.model)
    assert version.tags["lockstep.model_source"] == "file"
    assert f"version {version.version} is the file models/model.pkl as it is, not an MLflow model" in proc.stdout


def test_training_that_registers_the_model_itself_is_named_beside_lockstep_s_version(consumer, mlflow_env):
    """`log_model(registered_model_name=...)` in the code's own run: the registry gets the code's
    version and lockstep's. The rebuild names the code's, and says what to change."""
    train_logs(consumer, (
        "        import mlflow\n"
        "        with mlflow.start_run(run_name='own'):\n"
        f"            mlflow.sklearn.log_model(model, name='own', registered_model_name={consumer.model!r},\n"
        "                                     serialization_format='cloudpickle', pip_requirements=['scikit-learn'])\n"),
        "Training registers its model itself", keep_example=True)
    proc, out = rebuild(consumer.clone("ci"))
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:]
    registered = versions(mlflow_env.url, consumer.model)
    theirs = [v.version for v in registered if "lockstep.lock_commit" not in v.tags]
    assert len(registered) == 2 and len(theirs) == 1 and out["model-version"] not in theirs
    assert (f"the project's code registered {consumer.model} itself during this rebuild (version(s) {theirs[0]}, "
            f"without lockstep's lineage), beside lockstep's version {out['model-version']}") in proc.stdout


def test_s3_fault_during_push_leaves_no_commit_and_a_rerun_works(consumer, monkeypatch):
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower trees")
    proxy = FaultProxy(consumer.bucket.endpoint, lambda method, path: ACCESS_DENIED if method in ("PUT", "POST") else None)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # reads pass, every upload is refused
        proc, _ = rebuild(consumer.clone("ci"), "--register", "false")
    finally:
        proxy.close()
    assert proc.returncode == EXIT_DVC, proc.stdout
    assert proxy.hits and all(method in ("PUT", "POST") for method, _ in proxy.hits), proc.stdout[-1500:]
    message = proc.stdout.replace("%0A", "\n")
    assert "dvc push failed" in message and "nothing was committed" in message
    assert len(consumer.origin_log()) == 2
    monkeypatch.setenv("AWS_ENDPOINT_URL", consumer.bucket.endpoint)
    proc, out = rebuild(consumer.clone("ci-rerun"), "--register", "false")
    assert proc.returncode == EXIT_OK, proc.stdout
    assert len(consumer.origin_log()) == 3 and out["committed"] == "true"


def test_inputs_changed_on_main_meanwhile_are_not_overwritten(consumer):
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower trees")
    checkout = consumer.clone("ci")
    # while CI runs, another merge changes a training param on main
    consumer.set_param("n_estimators: 100", "n_estimators: 120")
    newer = consumer.commit("More trees")
    proc, _ = rebuild(checkout, "--register", "false")
    assert proc.returncode == EXIT_INPUTS_MOVED, proc.stdout
    message = proc.stdout.replace("%0A", "\n")
    assert "params.yaml:train.n_estimators changed (100 -> 120)" in message
    assert f"the run for {newer[:12]} rebuilds" in message
    assert consumer.origin_log()[0].startswith(newer)  # nothing pushed, nobody's commit lost


def test_unrelated_commit_on_main_is_rebased_onto(consumer):
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower trees")
    checkout = consumer.clone("ci")
    (consumer.dev / "README.md").write_text("docs\n")
    docs = consumer.commit("Docs")
    proc, out = rebuild(checkout, "--register", "false")
    assert proc.returncode == EXIT_OK, proc.stdout
    log = consumer.origin_log()
    assert log[1].startswith(docs) and "[skip ci]" in log[0]  # rebased on top, nothing lost
    assert git("merge-base", "--is-ancestor", docs, "main", cwd=consumer.origin) == ""


def test_dispatch_with_changed_param_commits_params_and_registers_new_version(consumer, mlflow_env):
    proc, first = rebuild(consumer.clone("ci-1"))
    assert proc.returncode == EXIT_OK, proc.stdout
    proc, second = rebuild(consumer.clone("ci-2"), "--set-params", "train.n_estimators=40", "--reason", "fewer trees",
                           env={"GITHUB_EVENT_NAME": "workflow_dispatch"})
    assert proc.returncode == EXIT_OK, proc.stdout
    assert int(second["model-version"]) == int(first["model-version"]) + 1
    head = consumer.clone("after")
    assert "n_estimators: 40" in (head / PROJECT / "params.yaml").read_text()
    assert "Set-param: train.n_estimators=40" in git("log", "-1", "--format=%B", cwd=head)
    version = MlflowClient(mlflow_env.url).get_model_version(consumer.model, second["model-version"])
    assert version.tags["lockstep.trigger"] == "workflow_dispatch"
    assert version.tags["lockstep.lock_commit"] == gitrepo.head(head)


def test_model_path_not_an_output_is_a_config_error(consumer):
    config = consumer.project / "lockstep.yaml"
    config.write_text(config.read_text().replace("path: models/model.pkl", "path: models/nope.pkl"))
    consumer.commit("bad config")
    proc, _ = rebuild(consumer.clone("ci"), "--register", "false")
    assert proc.returncode == 3
    assert "model.path: 'models/nope.pkl' is not an output of any stage in dvc.yaml" in proc.stdout
    assert len(consumer.origin_log()) == 2


def test_unknown_stage_is_named(consumer):
    proc, _ = rebuild(consumer.clone("ci"), "--stages", "trian", "--register", "false")
    assert proc.returncode == EXIT_DVC
    assert "stage 'trian' not found in dvc.yaml" in proc.stdout and "known stages: prepare, train, evaluate" in proc.stdout


def test_three_quick_merges_lose_no_commit_and_end_with_a_matching_lock(consumer):
    # three merges land before any rebuild finishes; each queued run checked out main as it was
    checkouts, merges = [], []
    for depth in (5, 4, 3):
        consumer.set_param(f"max_depth: {depth + 1}", f"max_depth: {depth}")
        merges.append(consumer.commit(f"max_depth {depth}"))
        checkouts.append(consumer.clone(f"ci-{depth}"))
    codes = [rebuild(checkout, "--register", "false")[0].returncode for checkout in checkouts]
    assert codes == [EXIT_INPUTS_MOVED, EXIT_INPUTS_MOVED, EXIT_OK]
    log = consumer.origin_log()
    assert [line.split(" ", 1)[0] for line in log[1:4]] == merges[::-1]  # every merge is on main
    assert "[skip ci]" in log[0] and len(log) == 5  # one lock commit, on top, no force push
    final = consumer.clone("final")
    from lockstep import dvcrepo

    assert dvcrepo.stale_stages(dvcrepo.open_repo(final / PROJECT)) == []
    assert "max_depth: 3" in (final / PROJECT / "params.yaml").read_text()


def test_registry_answer_lost_after_commit_ends_with_one_version(consumer, mlflow_env, monkeypatch):
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower trees")
    # the server stores the version, then the client hears 504
    proxy = FaultProxy(mlflow_env.url, lambda method, path: (504, b"Gateway Timeout") if "model-versions/create" in path else None, after=True)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        proc, out = rebuild(consumer.clone("ci-1"))
    finally:
        proxy.close()
    assert proxy.hits, "the fault was never injected"
    assert len(consumer.origin_log()) == 3  # the lock commit stays
    assert len(versions(mlflow_env.url, consumer.model)) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_env.url)
    proc, again = rebuild(consumer.clone("ci-2"))
    assert proc.returncode == EXIT_OK, proc.stdout
    assert len(versions(mlflow_env.url, consumer.model)) == 1 and len(consumer.origin_log()) == 3
    assert again["model-version"] == versions(mlflow_env.url, consumer.model)[0].version


def test_registry_down_keeps_the_commit_and_a_rerun_registers(consumer, mlflow_env, monkeypatch):
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower trees")
    proxy = FaultProxy(mlflow_env.url, lambda method, path: (503, b"down") if "registered-models" in path or "model-versions" in path else None)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        proc, _ = rebuild(consumer.clone("ci-1"))
    finally:
        proxy.close()
    assert proc.returncode == 7, proc.stdout
    assert "re-run" in proc.stdout
    assert len(consumer.origin_log()) == 3 and versions(mlflow_env.url, consumer.model) == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_env.url)
    proc, out = rebuild(consumer.clone("ci-2"))
    assert proc.returncode == EXIT_OK, proc.stdout
    assert len(consumer.origin_log()) == 3 and [v.version for v in versions(mlflow_env.url, consumer.model)] == [out["model-version"]]


def test_a_changed_input_with_a_non_ascii_name_is_seen(consumer):
    """git quotes such paths in its default output; the moved-inputs check must still match them."""
    dvc_yaml = consumer.project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("      - src/train.py\n", "      - src/train.py\n      - src/größe \"v1\".txt\n", 1))
    dep = consumer.project / "src" / 'größe "v1".txt'
    dep.write_text("one\n")
    consumer.dvc("repro")
    consumer.dvc("push")
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("A size file the training reads")
    checkout = consumer.clone("ci")
    dep.write_text("two\n")  # meanwhile, a merge changes it
    newer = consumer.commit("New sizes")
    proc, _ = rebuild(checkout, "--register", "false")
    assert proc.returncode == EXIT_INPUTS_MOVED, proc.stdout
    assert 'src/größe "v1".txt changed' in proc.stdout.replace("%0A", "\n")
    assert consumer.origin_log()[0].startswith(newer)
