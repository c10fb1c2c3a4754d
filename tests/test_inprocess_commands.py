"""`lockstep rebuild`, `rollback`, `verify-remote`, `check-config` and `comment` in process, through
`lockstep.cli.main`: a local DVC remote, a bare git origin, a SQLite MLflow registry, the local
GitHub API test server."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml

from lockstep.errors import (
    EXIT_ARTIFACT,
    EXIT_CHECKS_FAILED,
    EXIT_CONFIG,
    EXIT_DVC,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
)

from conftest import PROJECT, ROOT, git
from github_api import TOKEN
from test_cli_contract import action_outputs

pytestmark = pytest.mark.unit
REPO = "octo/ml"
MODEL = "breast-cancer-classifier"


def registry(bed):
    from mlflow import MlflowClient

    return MlflowClient(bed.tracking_uri)


# --- rebuild ------------------------------------------------------------------------------------


def test_rebuild_pushes_one_skip_ci_commit_and_registers_a_version(bed):
    bed.use_mlflow()
    checkout = bed.clone("ci")
    start = bed.sha("main")
    run = bed.cli("rebuild", "--working-directory", str(checkout / PROJECT), "--branch", "main",
                  "--set-params", "train.max_depth=5", "--reason", "merge of #3", "--repository", REPO,
                  "--actor", "dana", "--trigger", "push")
    assert run.code == EXIT_OK, run.stdout + run.stderr
    # one commit on the bare origin, on top of the start, with the lock and the changed params
    log = git("log", "--format=%H %s", "main", cwd=bed.origin).splitlines()
    assert len(log) == 2 and log[1].startswith(start)
    sha, subject = log[0].split(" ", 1)
    assert subject == f"lockstep: rebuild train, evaluate on {start[:12]} [skip ci]"
    body = git("log", "-1", "--format=%B", "main", cwd=bed.origin)
    assert "Reason: merge of #3" in body and "Set-param: train.max_depth=5" in body and "Actor: dana" in body
    changed = set(git("show", "--name-only", "--format=", "main", cwd=bed.origin).split())
    assert {f"{PROJECT}/dvc.lock", f"{PROJECT}/params.yaml", f"{PROJECT}/metrics.json"} <= changed
    assert changed <= {f"{PROJECT}/dvc.lock", f"{PROJECT}/params.yaml", f"{PROJECT}/metrics.json", f"{PROJECT}/plots/confusion.csv"}
    assert run.outputs["lock-commit"] == sha and run.outputs["committed"] == "true"
    assert action_outputs("rebuild") <= set(run.outputs)  # what actions/rebuild/action.yml reads
    assert run.outputs["model-name"] == MODEL and run.outputs["model-alias"] == "candidate"
    assert run.outputs["model-uri"] == f"models:/{MODEL}/{run.outputs['model-version']}"
    # the version in the registry carries the lineage, the alias and (first version) the promotion
    client = registry(bed)
    version = client.get_model_version_by_alias(MODEL, "candidate")
    assert str(version.version) == run.outputs["model-version"]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == str(version.version)
    assert version.tags["lockstep.lock_commit"] == sha
    md5 = version.tags["lockstep.model_md5"]
    assert version.tags["lockstep.dvc_object"] == f"{bed.remote}/files/md5/{md5[:2]}/{md5[2:]}"
    assert (bed.remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert float(version.tags["lockstep.metric.accuracy"]) > 0.9
    mlflow_run = client.get_run(run.outputs["mlflow-run-id"])
    assert mlflow_run.data.params["train.max_depth"] == "5"  # logged by the project's training code
    assert mlflow_run.data.tags["lockstep.reason"] == "merge of #3"
    # every object of the new lock is in the remote
    assert bed.cli("verify-remote", "--working-directory", str(checkout / PROJECT)).code == EXIT_OK
    assert "| model-version | `1` |" in run.summary


def test_a_rebuild_that_registers_a_file_commits_but_leaves_the_mlflow_model_serving(bed):
    """The training code stopped logging the model into the rebuild's run: the version is the file,
    which `models:/NAME@champion` consumers cannot load. The lock is committed and the version
    registered as the candidate; champion stays on the MLflow model, and the rebuild says why."""
    bed.use_mlflow()
    first = bed.cli("rebuild", "--working-directory", str(bed.clone("ci-1") / PROJECT), "--branch", "main")
    assert first.code == EXIT_OK, first.stdout + first.stderr
    client = registry(bed)
    logged = first.outputs["model-version"]
    assert client.get_model_version(MODEL, logged).tags["lockstep.model_source"] == "logged-model"
    assert first.outputs["promoted"] == "true"

    git("pull", "-q", "origin", "main", cwd=bed.dev)

    def no_model_logged(project):
        train = project / "src" / "train.py"
        call = "        log_to_mlflow(model, params, train_accuracy, features)\n"
        assert call in train.read_text()
        train.write_text(train.read_text().replace(call, "        pass\n"))

    bed.commit_on("main", "Training logs nothing to MLflow", no_model_logged)
    run = bed.cli("rebuild", "--working-directory", str(bed.clone("ci-2") / PROJECT), "--branch", "main",
                  "--set-params", "train.max_depth=5")
    assert run.code == EXIT_OK, run.stdout + run.stderr
    raw = run.outputs["model-version"]
    assert raw != logged and run.outputs["committed"] == "true" and run.outputs["promoted"] == "false"
    assert bed.sha("main") == run.outputs["lock-commit"]
    assert client.get_model_version(MODEL, raw).tags["lockstep.model_source"] == "file"
    assert str(client.get_model_version_by_alias(MODEL, "candidate").version) == raw
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == logged
    assert "lockstep.promoted_from" not in client.get_model_version(MODEL, raw).tags
    from lockstep import registry as lockstep_registry, tracking

    moves = lockstep_registry.read_history(tracking.Tracker(), MODEL, "champion")
    assert [(m.version, m.by) for m in moves] == [(logged, "promotion")]
    said = run.stdout.replace("%0A", "\n")
    assert "::warning title=lockstep rebuild%3A not promoted::not promoted to 'champion'" in said
    assert f"{MODEL}@champion serves version {logged}, an MLflow model" in said
    assert f"'champion' stays on version {logged}" in said and "mlflow.<flavor>.log_model(model, name='model')" in said
    card = client.get_model_version(MODEL, raw).description
    assert f"Promotion: not promoted to `champion`: version {logged} holds an MLflow model, this version the model file" in card


def test_failing_stage_pushes_commits_and_registers_nothing(bed):
    bed.use_mlflow()
    checkout = bed.clone("ci")
    before = bed.sha("main")
    run = bed.cli("rebuild", "--working-directory", str(checkout / PROJECT), "--set-params", "train.n_estimators=-1")
    assert run.code == EXIT_DVC, run.stdout
    assert "stage 'train' failed" in run.stdout
    assert "lockstep pushed, committed and registered nothing" in run.stdout
    assert bed.sha("main") == before
    assert registry(bed).search_registered_models() == []
    runs = registry(bed).search_runs([e.experiment_id for e in registry(bed).search_experiments()])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_set_params_cannot_rewrite_a_stage_command_and_nothing_runs(bed):
    # a dispatch payload sets values of params files; dvc.yaml is not one, whatever it is called
    checkout = bed.clone("ci")
    before = bed.sha("main")
    run = bed.cli("rebuild", "--working-directory", str(checkout / PROJECT), "--register", "false",
                  "--set-params", "dvc.yaml:stages.train.cmd=touch pwned")
    assert run.code == EXIT_USAGE, run.stdout
    assert "'dvc.yaml' is not a params file of this pipeline" in run.stdout and "params.yaml" in run.stdout
    assert "touch pwned" not in (checkout / PROJECT / "dvc.yaml").read_text()
    assert not (checkout / PROJECT / "pwned").exists() and bed.sha("main") == before


def test_main_moving_with_unrelated_commits_is_rebased_and_pushed(bed):
    checkout = bed.clone("ci")
    ours = bed.commit_on("main", "Docs", lambda project: (project.parent / "README.md").write_text("# the team's notes\n"))
    # only the evaluation stage is rebuilt (no training): the race is about the commit
    run = bed.cli("rebuild", "--working-directory", str(checkout / PROJECT), "--register", "false",
                  "--stages", "evaluate", "--set-params", "evaluate.threshold=0.6")
    assert run.code == EXIT_OK, run.stdout + run.stderr
    log = git("log", "--format=%H %s", "main", cwd=bed.origin).splitlines()
    assert len(log) == 3 and log[1].startswith(ours)
    assert log[0].startswith(run.outputs["lock-commit"]) and "[skip ci]" in log[0]
    assert "MLFLOW_TRACKING_URI is not set" not in run.stdout  # registration was not asked for


def test_main_moving_with_changed_inputs_pushes_nothing(bed):
    from lockstep.errors import EXIT_INPUTS_MOVED

    checkout = bed.clone("ci")

    def stricter(project):
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("threshold: 0.5", "threshold: 0.55"))

    theirs = bed.commit_on("main", "Stricter threshold", stricter)
    run = bed.cli("rebuild", "--working-directory", str(checkout / PROJECT), "--register", "false",
                  "--stages", "evaluate", "--set-params", "evaluate.threshold=0.6")
    assert run.code == EXIT_INPUTS_MOVED, run.stdout
    assert "params.yaml:evaluate.threshold changed (0.5 -> 0.55)" in run.stdout
    assert bed.sha("main") == theirs


def test_rebuild_rejects_a_model_path_that_no_stage_outputs(bed):
    checkout = bed.clone("ci")
    config = checkout / PROJECT / "lockstep.yaml"
    config.write_text(config.read_text().replace("path: models/model.pkl", "path: models/other.pkl"))
    run = bed.cli("rebuild", "--working-directory", str(checkout / PROJECT))
    assert run.code == EXIT_CONFIG
    assert "model.path: 'models/other.pkl' is not an output of any stage in dvc.yaml" in run.stdout
    assert re.search(r"::error title=[^:]*,file=[^,:]*lockstep\.yaml,line=6::", run.stdout)


def test_rebuild_rejects_a_bad_boolean_input(bed):
    run = bed.cli("rebuild", "--working-directory", str(bed.project), "--push", "maybe")
    assert run.code == EXIT_USAGE
    assert "input 'push' must be true or false, got 'maybe'" in run.stdout


# --- rollback -----------------------------------------------------------------------------------

LINEAGE = ("lockstep.lock_commit", "lockstep.dvc_lock_sha256", "lockstep.model_md5")


def _versions(bed, count, *, lineage=True):
    client = registry(bed)
    client.create_registered_model(MODEL)
    for number in range(1, count + 1):
        tags = {tag: f"{tag}-{number}" for tag in LINEAGE} if lineage else {}
        client.create_model_version(MODEL, source=str(bed.root / f"model-{number}"), tags=tags)
    client.set_registered_model_alias(MODEL, "champion", str(count))
    return client


def test_rollback_moves_the_alias_back_and_records_who_and_why(bed):
    bed.use_mlflow()
    client = _versions(bed, 3)
    run = bed.cli("rollback", "--working-directory", str(bed.project), "--reason", "latency regression",
                  env={"GITHUB_ACTOR": "oncall"})
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["lockstep.rollback.by"] == "oncall" and tags["lockstep.rollback.reason"] == "latency regression"
    assert tags["lockstep.rollback.from_version"] == "3"
    assert action_outputs("rollback") <= set(run.outputs)
    assert run.outputs == {"model-name": MODEL, "model-version": "2", "alias": "champion",
                           "previous-version": "3", "lock-commit": "lockstep.lock_commit-2"}
    assert "git checkout lockstep.lock_commit-2 && dvc checkout" in run.stdout
    assert "## lockstep rollback" in run.summary


def test_rollback_refuses_versions_without_lineage_and_unknown_versions(bed):
    bed.use_mlflow()
    client = _versions(bed, 2, lineage=False)
    hand = bed.cli("rollback", "--model", MODEL, "--version", "1", "--reason", "bad")
    assert hand.code == EXIT_USAGE and "has no lockstep lineage" in hand.stdout
    automatic = bed.cli("rollback", "--model", MODEL, "--reason", "bad")
    assert automatic.code == EXIT_USAGE and "no earlier version with lockstep lineage" in automatic.stdout
    unknown = bed.cli("rollback", "--model", MODEL, "--version", "9", "--reason", "bad")
    assert unknown.code == EXIT_USAGE and "version 9 does not exist" in unknown.stdout
    unset = bed.cli("rollback", "--model", MODEL, "--alias", "nobody", "--reason", "bad")
    assert unset.code == EXIT_USAGE and "alias 'nobody' is not set" in unset.stdout
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"


def test_rollback_needs_a_reason(bed):
    bed.use_mlflow()
    run = bed.cli("rollback", "--working-directory", str(bed.project))
    assert run.code == EXIT_USAGE and "a rollback needs a reason" in run.stdout
    assert run.outputs["error"] == "a rollback needs a reason"


# --- verify-remote and check-config -------------------------------------------------------------


def test_verify_remote_counts_and_names_missing_objects(bed):
    ok = bed.cli("verify-remote", "--working-directory", str(bed.project))
    assert ok.code == EXIT_OK, ok.stdout
    assert ok.outputs["missing"] == "0" and int(ok.outputs["checked"]) > 0
    model = yaml.safe_load((bed.project / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]
    (bed.remote / "files" / "md5" / model[:2] / model[2:]).unlink()
    missing = bed.cli("verify-remote", "--working-directory", str(bed.project))
    assert missing.code == EXIT_CHECKS_FAILED
    assert missing.outputs["missing"] == "1"
    assert "1 object(s) referenced by dvc.lock are missing from" in missing.stdout


def test_verify_remote_without_a_remote_is_a_dvc_error(bed):
    (bed.project / ".dvc" / "config").write_text("")
    run = bed.cli("verify-remote", "--working-directory", str(bed.project))
    assert run.code == EXIT_DVC
    assert "no DVC remote is configured for this project" in run.stdout


def test_check_config_valid_invalid_and_missing(bed, tmp_path):
    ok = bed.cli("check-config", "--working-directory", str(bed.project))
    assert ok.code == EXIT_OK and "lockstep.yaml: valid (4 gate(s))" in ok.stdout
    (tmp_path / "lockstep.yaml").write_text("version: 1\ngates:\n  accuracy: {direction: up}\n")
    bad = bed.cli("check-config", "--working-directory", str(tmp_path))
    assert bad.code == EXIT_CONFIG
    assert "lockstep.yaml:3: gates.accuracy.direction: 'up' is not one of ['higher', 'lower']" in bad.stdout
    assert re.search(r"::error title=[^:]*,file=[^,:]*lockstep\.yaml,line=3::", bad.stdout)
    # the hint points at what exists: the README's section and the schema file (nothing is generated)
    assert "see the lockstep.yaml section of the README and scripts/lockstep/schema/lockstep.schema.json" in bad.stdout
    assert (ROOT / "scripts" / "lockstep" / "schema" / "lockstep.schema.json").is_file()
    (tmp_path / "lockstep.yaml").write_text("version: 1\ngates: [unclosed\n")
    unparseable = bed.cli("check-config", "--working-directory", str(tmp_path))
    assert unparseable.code == EXIT_CONFIG
    (tmp_path / "lockstep.yaml").unlink()
    missing = bed.cli("check-config", "--working-directory", str(tmp_path))
    assert missing.code == EXIT_CONFIG
    assert "❌ lockstep check-config" in missing.summary


# --- comment ------------------------------------------------------------------------------------


def _report(bed):
    """A real validation report: the PR changed a param without re-training (a stale lock)."""
    def more(project):
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("n_estimators: 150", "n_estimators: 175"))

    head = bed.commit_on("feature", "Param without retraining", more)
    checkout = bed.clone("ci", "feature", depth=1)
    report = bed.root / "report"
    run = bed.cli("validate", "--working-directory", str(checkout / PROJECT), "--base-sha", bed.sha("main"),
                  "--head-sha", head, "--pr-number", "5", "--report-dir", str(report), report_dir=report)
    assert run.code == EXIT_CHECKS_FAILED
    return report, head


def test_comment_posts_then_updates_in_place(bed, api):
    report, _ = _report(bed)
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": TOKEN}
    first = bed.cli("comment", "--report-dir", str(report), env=env)
    assert first.code == EXIT_OK, first.stdout + first.stderr
    assert first.outputs["created"] == "true" and first.outputs["pr-number"] == "5"
    assert action_outputs("comment") <= set(first.outputs)
    assert first.stdout.splitlines()[0] == f"::add-mask::{TOKEN}"
    second = bed.cli("comment", "--report-dir", str(report), env=env)
    assert second.outputs["created"] == "false" and second.outputs["comment-id"] == first.outputs["comment-id"]
    (body,) = [c["body"] for c in api.comment_objects(REPO, 5)]
    assert "failed validation" in body and "dvc.lock is stale" in body


def test_comment_from_an_artifact_checks_the_pull_request(bed, api):
    report, head = _report(bed)
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": TOKEN}
    api.add_pull(REPO, 5, head, head_label="forker:feature")
    run = bed.cli("comment", "--report-dir", str(report), "--from-artifact", "true", "--head-sha", head, env=env)
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert len(api.comment_objects(REPO, 5)) == 1
    # the workflow run's head is another PR's: rejected, nothing posted there
    api.add_pull(REPO, 6, "c" * 40)
    other = bed.cli("comment", "--report-dir", str(report), "--from-artifact", "true", "--head-sha", "c" * 40, env=env)
    assert other.code == EXIT_ARTIFACT
    assert api.comment_objects(REPO, 6) == []
    no_head = bed.cli("comment", "--report-dir", str(report), "--from-artifact", "true", env=env)
    assert no_head.code == EXIT_USAGE and "`head-sha` is required with from-artifact" in no_head.stdout


def test_comment_input_errors(bed, tmp_path):
    unknown_repo = bed.cli("comment", "--report-dir", str(tmp_path))
    assert unknown_repo.code == EXIT_USAGE and "the repository is unknown" in unknown_repo.stdout
    bed.monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    no_results = bed.cli("comment", "--report-dir", str(tmp_path), "--repository", REPO)
    assert no_results.code == EXIT_USAGE and "no validation results to post" in no_results.stdout
    (tmp_path / "results.json").write_text(json.dumps({"project": ".", "checks": [], "metrics": [], "passed": True}))
    no_pr = bed.cli("comment", "--report-dir", str(tmp_path), "--repository", REPO)
    assert no_pr.code == EXIT_USAGE and "no PR number" in no_pr.stdout


# --- the command line itself --------------------------------------------------------------------


def test_no_command_prints_help_and_exits_2(bed):
    run = bed.cli()
    assert run.code == EXIT_USAGE
    assert "validate" in run.stdout and "rollback" in run.stdout


def test_a_bug_is_exit_70_with_the_traceback_in_a_group(bed, monkeypatch):
    from lockstep import dvcrepo

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(dvcrepo, "open_repo", broken)
    run = bed.cli("verify-remote", "--working-directory", str(bed.project))
    assert run.code == EXIT_INTERNAL
    assert "::group::traceback (a bug in lockstep)" in run.stdout
    assert "internal error: RuntimeError: boom. This is a bug in lockstep" in run.stdout


def test_init_writes_a_valid_config_and_the_workflows_and_never_overwrites(bed):
    from lockstep import config as configmod

    (bed.project / "lockstep.yaml").unlink()
    wrote = bed.cli("init", "--working-directory", str(bed.project), "--repository", "octo/ml")
    assert wrote.code == EXIT_OK, wrote.stdout
    cfg = configmod.load(bed.project, required=True)
    assert cfg.model_path == "models/model.pkl" and cfg.evaluation_stages == ("evaluate",)
    directions = {gate.metric: gate.direction for gate in cfg.gates}
    assert directions["accuracy"] == "higher" and directions["log_loss"] == "lower"
    workflows = bed.dev / ".github" / "workflows"
    assert sorted(p.name for p in workflows.glob("*.yml")) == ["ml-main.yml", "ml-pr-comment.yml", "ml-pr.yml", "ml-retrain.yml"]
    assert "working-directory: example-project\n" in (workflows / "ml-pr.yml").read_text()
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" not in wrote.stdout  # the bed's remote is a folder
    assert "a local folder: CI runners cannot reach it" in wrote.stdout
    again = bed.cli("init", "--working-directory", str(bed.project))
    assert again.code == 2 and "already exist" in again.stdout
    assert bed.cli("init", "--working-directory", str(bed.project), "--force").code == EXIT_OK
    bad = bed.cli("init", "--working-directory", str(bed.project), "--force", "--library", "not a ref")
    assert bad.code == 2 and "is not OWNER/REPO@REF" in bad.stdout


def test_init_passes_the_secrets_each_remote_needs_and_only_ones_lockstep_declares(bed):
    """A project with a Google Cloud Storage and a Google Drive remote: the workflows `lockstep
    init` writes hand lockstep GOOGLE_CREDENTIALS, DVC_REMOTE_AUTH and GDRIVE_CREDENTIALS_DATA
    (and MLflow's), not the AWS keys, and each secret they pass is one the reusable workflow they call declares."""
    config = bed.project / ".dvc" / "config"
    config.write_text(config.read_text() + "['remote \"gcs\"']\n    url = gs://acme-ml/dvc\n"
                      "['remote \"drive\"']\n    url = gdrive://0AIac4JZqHhKmUk9PDA/dvcstore\n")
    wrote = bed.cli("init", "--working-directory", str(bed.project), "--repository", "octo/ml", "--force")
    assert wrote.code == EXIT_OK, wrote.stdout
    assert "GDRIVE_CREDENTIALS_DATA: a service account's JSON key" in wrote.stdout
    assert "GOOGLE_CREDENTIALS: a service account's JSON key" in wrote.stdout
    workflows = bed.dev / ".github" / "workflows"
    for name in ("ml-pr.yml", "ml-main.yml", "ml-retrain.yml"):
        jobs = yaml.safe_load((workflows / name).read_text())["jobs"]
        job = jobs["rebuild"] if name == "ml-main.yml" else next(iter(jobs.values()))
        passed = list(job["secrets"])
        assert passed == ["GDRIVE_CREDENTIALS_DATA", "GOOGLE_CREDENTIALS", "DVC_REMOTE_AUTH", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                          "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"], name
        assert all(value == f"${{{{ secrets.{key} }}}}" for key, value in job["secrets"].items())
        called = ROOT / ".github" / "workflows" / job["uses"].split("/.github/workflows/")[1].split("@")[0]
        declared = yaml.safe_load(called.read_text())[True]["workflow_call"]["secrets"]
        assert set(passed) <= set(declared), (name, set(passed) - set(declared))


@pytest.mark.parametrize(("installed_from", "named"), [
    ("requirements.txt ", "ml/requirements.txt"),
    ("../requirements.txt ", "requirements.txt"),
    ("", "no requirements file (none of requirements.txt"),
])
def test_a_stage_missing_a_module_is_told_where_the_environment_came_from(tmp_path, monkeypatch, installed_from, named):
    import subprocess
    import sys

    from lockstep import dvcrepo
    from lockstep.errors import DvcError

    project = tmp_path / "ml"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=project, check=True)
    (project / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: python -c 'import sklearn_not_installed.metrics'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKSTEP_PROJECT_REQUIREMENTS", installed_from)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env={**os.environ, "DVC_NO_ANALYTICS": "true"})
    assert "stage 'evaluate' failed" in failed.value.message
    assert "No module named 'sklearn_not_installed'" in failed.value.message
    assert failed.value.hint.startswith("the stage imports `sklearn_not_installed`, which the project's environment does not have; "
                                        f"it was installed from {named}")
    assert "`requirements` input" in failed.value.hint


@pytest.mark.parametrize(("layout", "folder"), [("src/cnnClassifier", "src"), ("cnnClassifier", ".")])
def test_a_stage_missing_the_project_s_own_package_is_told_to_set_its_path(tmp_path, monkeypatch, layout, folder):
    """The module missing is the project's own package (a src/ layout's, run by its script's path):
    no requirement provides it; `env: {PYTHONPATH: ...}` in lockstep.yaml does."""
    import subprocess
    import sys

    from lockstep import dvcrepo
    from lockstep.errors import DvcError

    project = tmp_path / "ml"
    (project / layout / "pipeline").mkdir(parents=True)
    (project / layout / "__init__.py").write_text("")
    (project / layout / "pipeline" / "stage.py").write_text("from cnnClassifier.components import evaluation\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=project, check=True)
    (project / "dvc.yaml").write_text(f"stages:\n  evaluate:\n    cmd: python {layout}/pipeline/stage.py\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKSTEP_PROJECT_REQUIREMENTS", "requirements.txt ")
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env={**os.environ, "DVC_NO_ANALYTICS": "true"})
    assert "No module named 'cnnClassifier'" in failed.value.message
    assert failed.value.hint.startswith(f"the stage imports `cnnClassifier`, the project's own package ({folder}/cnnClassifier/), "
                                        "which Python does not find from the project's folder")
    assert f"Add `env: {{PYTHONPATH: {folder}}}` to lockstep.yaml" in failed.value.hint
    assert "`requirements` input" not in failed.value.hint


def test_google_credentials_that_are_not_a_json_key_are_a_named_error():
    from lockstep import dvcrepo
    from lockstep.errors import DvcError

    for text in ("/home/runner/key.json", '["service_account"]', '{"client_email": "x"}'):
        with pytest.raises(DvcError) as bad:
            dvcrepo.google_cloud_credentials({"GOOGLE_CREDENTIALS": text})
        assert bad.value.message == 'GOOGLE_CREDENTIALS is not a Google credentials JSON object (no "type" key)'
        assert "whole content of the service account's key file" in bad.value.hint
        assert text not in bad.value.message + bad.value.hint  # a secret's value is never echoed
    assert dvcrepo.google_cloud_credentials({}) is False



def test_a_stage_that_logs_to_an_mlflow_server_of_its_own_is_told_to_use_the_jobs(tmp_path, monkeypatch):
    """Training code with `mlflow.set_tracking_uri("http://localhost:1234")` (the developer's own
    server): in CI that server is not there. The error says so and what to do."""
    import subprocess
    import sys

    from lockstep import dvcrepo
    from lockstep.errors import DvcError

    project = tmp_path / "ml"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=project, check=True)
    (project / "train.py").write_text("import mlflow\nmlflow.set_tracking_uri('http://127.0.0.1:9')\nmlflow.set_experiment('wine')\n")
    (project / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["train"], env={**os.environ, "DVC_NO_ANALYTICS": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert "stage 'train' failed" in failed.value.message
    assert failed.value.hint.startswith("the stage logs to an MLflow server of its own, http://127.0.0.1:9, which this job cannot reach")
    assert "MLFLOW_TRACKING_URI" in failed.value.hint


def test_a_stage_that_reads_an_output_it_does_not_declare_is_told_to_declare_it(tmp_path, monkeypatch):
    """The evaluation reads another stage's output that its deps do not list: on the developer's
    machine the file is there; CI fetches only what the stage declares."""
    import subprocess
    import sys

    from lockstep import dvcrepo
    from lockstep.errors import DvcError

    project = tmp_path / "ml"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=project, check=True)
    (project / "dvc.yaml").write_text(
        "stages:\n  features:\n    cmd: python -c \"open('data/processed/test.csv', 'w')\"\n    outs: [data/processed]\n"
        "  evaluate:\n    cmd: python -c \"open('data/processed/test.csv')\"\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvcError) as failed:
        dvcrepo.reproduce(project, ["evaluate"], env={**os.environ, "DVC_NO_ANALYTICS": "true"})
    assert failed.value.hint.startswith("the stage reads data/processed/test.csv, which dvc.yaml does not list in its deps: "
                                        "it is (in) the output data/processed")
    assert "Add data/processed to the stage's deps" in failed.value.hint
