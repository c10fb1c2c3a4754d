"""What a retrain changed, from the locks of the commit it started from and of the rebuild:
`Changed:` lines in the lock commit and the `lockstep.changed_outputs` tag on the model version; and a forced retrain that reproduces the
version the alias points to commits nothing, registers nothing, and says since when."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from lockstep import dvcrepo, rebuild as rebuildmod
from lockstep.errors import EXIT_OK
from test_faults import SHAPE, rebuild, versions

from conftest import BIN, git, run
from test_shapes import make_repo

pytestmark = pytest.mark.integration


def test_a_forced_retrain_records_what_changed_then_reproduces_without_a_new_version(tmp_path, mlflow_env):
    repo = make_repo(SHAPE, tmp_path)
    repo.set_steps(30)
    merged = repo.commit("thirty steps, lock left to CI")
    experiment = f"changed-{uuid.uuid4().hex[:8]}"

    proc, first, summary = rebuild(repo.clone("ci-1"), "ml", experiment, "--force-all", "true",
                                   "--reason", "new data 2026-12-01")
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert first["committed"] == "true" and first["model-version"] == "1"
    message = git("log", "-1", "--format=%B", "main", cwd=repo.origin)
    changed = [line for line in message.splitlines() if line.startswith("Changed: ")]
    # steps changed the model and its metrics; the data (prepare) is reproduced as it was
    assert changed == ["Changed: metrics.json (modified)", "Changed: model.json (modified)"], message
    assert "Reason: new data 2026-12-01" in message
    version = MlflowClient(mlflow_env.url).get_model_version(repo.model_name, "1")
    assert version.tags["lockstep.changed_outputs"].splitlines() == ["metrics.json (modified)", "model.json (modified)"]
    assert version.tags["lockstep.reason"] == "new data 2026-12-01"
    assert "Changed outputs: metrics.json (modified), model.json (modified)." in summary
    lock_commit = git("rev-parse", "main", cwd=repo.origin)
    assert git("rev-parse", "main~1", cwd=repo.origin) == merged

    # the same forced retrain again: same data, same model bytes
    proc, second, summary = rebuild(repo.clone("ci-2"), "ml", experiment, "--force-all", "true", "--reason", "nightly")
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert second["committed"] == "false" and second["unchanged-since"] == "1"
    assert git("rev-parse", "main", cwd=repo.origin) == lock_commit  # nothing committed
    assert [v.version for v in versions(mlflow_env.url, repo.model_name)] == ["1"]  # nothing registered
    assert f"Data unchanged since v1 (commit `{lock_commit[:12]}`): nothing was committed and no version was registered." in summary


def test_changed_lines_are_bounded_and_inert():
    changes = [dvcrepo.OutputChange(f"data/part-{i}\nSigned-off-by: x <x@example.com>", "added") for i in range(25)]
    inputs = rebuildmod.RebuildInputs(project_dir=".", trigger="schedule")
    message = rebuildmod._message(["prepare"], "a" * 40, inputs, changes)
    lines = message.splitlines()
    changed = [line for line in lines if line.startswith("Changed: ")]
    assert len(changed) == rebuildmod.MAX_CHANGED + 1 and changed[-1] == "Changed: … and 5 more"
    assert not any(line.startswith("Signed-off-by") for line in lines)  # a path cannot add a trailer
    assert changed[0] == "Changed: data/part-0 Signed-off-by: x <x@example.com> (added)"


def rebuild_after(repo, change: str):
    """The developer's `dvc repro`, push and commit of `change` on main, then a param change merged
    without its lock, then CI's rebuild of it (no registration)."""
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    repo.dvc("push")
    repo.commit(change)
    repo.set_steps(30)
    repo.commit("thirty steps, lock left to CI")
    proc, _out, _summary = rebuild(repo.clone("ci"), "ml", f"changed-{uuid.uuid4().hex[:8]}", "--register", "false")
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    return proc


def test_outputs_a_rebuild_did_not_pull_are_no_change(tmp_path):
    """A retrain of `train` pulls train's inputs only: the raw data `prepare` reads (`dvc add`)
    stays in the remote. The lock commit names what the retrain changed, from the records of both
    commits, not the outputs it never downloaded (`dvc diff` against the workspace calls them deleted)."""
    repo = make_repo(SHAPE, tmp_path)
    (repo.project / "source").mkdir()
    (repo.project / "source" / "raw.txt").write_text("rows from the warehouse\n")
    repo.dvc("add", "source/raw.txt")
    dvc_yaml = repo.project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("deps: [prepare.py]", "deps: [prepare.py, source/raw.txt]", 1))
    proc = rebuild_after(repo, "prepare reads the raw data")
    assert "rebuilding train, evaluate" in proc.stdout
    message = git("log", "-1", "--format=%B", "main", cwd=repo.origin)
    changed = [line for line in message.splitlines() if line.startswith("Changed: ")]
    assert changed == ["Changed: metrics.json (modified)", "Changed: model.json (modified)"], message
    assert "deleted" not in proc.stdout


def test_a_retrain_commits_the_dvc_files_it_rewrote_and_names_the_undeclared_ones(tmp_path):
    """The training run keeps its metrics in a git-carried file named by dvc.yaml's top-level
    `metrics:` but output by no stage (dvclive's folder in DVC's experiments example), and copies
    the model into a git-tracked folder for a web app that dvc.yaml does not know. The lock commit
    carries the first, as a developer's `dvc repro` and commit would; the second is named, not committed."""
    repo = make_repo(SHAPE, tmp_path)
    train = repo.project / "train.py"
    train.write_text(train.read_text() + (
        'json.dump({"train_steps": train["steps"]}, open("train_metrics.json", "w"))\n'
        'os.makedirs("webapp", exist_ok=True)\njson.dump({"threshold": best[2]}, open("webapp/model.json", "w"))\n'))
    dvc_yaml = repo.project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text() + "metrics:\n  - train_metrics.json\n")
    proc = rebuild_after(repo, "training metrics and a copy for the web app")
    committed = git("show", "--name-only", "--format=", "main", cwd=repo.origin).splitlines()
    assert sorted(committed) == ["ml/dvc.lock", "ml/train_metrics.json"]
    assert git("show", "main:ml/train_metrics.json", cwd=repo.origin).strip() == '{"train_steps": 30}'
    assert ("::warning title=lockstep rebuild::the rebuilt stages changed files git tracks that dvc.yaml does not "
            "declare: webapp/model.json. They are not committed") in proc.stdout


def test_a_frozen_data_stage_is_pulled_not_rebuilt_and_a_frozen_model_stage_is_named(tmp_path):
    """`dvc freeze prepare` (an expensive data stage): `dvc repro` takes its outputs as they are, and
    so does a rebuild, forced or not, pulling them from the remote. A frozen training stage would
    leave the rebuild nothing to retrain: said before anything is done."""
    repo = make_repo(SHAPE, tmp_path)
    repo.dvc("freeze", "prepare")
    repo.commit("the data is frozen")
    repo.set_steps(30)
    repo.commit("thirty steps, lock left to CI")
    for extra in ((), ("--force-all", "true")):
        proc, out, _summary = rebuild(repo.clone(f"ci{len(extra)}"), "ml", f"frozen-{uuid.uuid4().hex[:8]}",
                                      "--register", "false", *extra)
        assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
        assert ("not rebuilt, frozen (`dvc freeze`): prepare" in proc.stdout) is bool(extra)  # forced: all but it
        assert "prepare" not in out["stages"].split(","), out
    git("pull", "-q", "--ff-only", "origin", "main", cwd=repo.dev)  # CI's lock commits
    head = git("rev-parse", "main", cwd=repo.origin)
    repo.dvc("freeze", "train")
    repo.commit("the model is frozen")
    proc, _out, _summary = rebuild(repo.clone("ci-train"), "ml", f"frozen-{uuid.uuid4().hex[:8]}", "--register", "false")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "stage train is frozen (`dvc freeze`)" in proc.stdout and "dvc unfreeze train" in proc.stdout
    assert git("rev-parse", "main~1", cwd=repo.origin) == head  # nothing but the developer's commit

