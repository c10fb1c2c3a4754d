"""Outputs with `persist: true` in a main rebuild (README, Making new data visible to DVC): DVC keeps
them in place while their stage re-runs. A collecting stage's records are pulled as the lock
records them, so a forced retrain adds to them instead of committing only the new batch; the model
stage's checkpoint is the developer's and is never restored; a persisted output the remote lacks
stops the rebuild before anything runs. Against the S3 server, a bare origin and the MLflow registry."""

from __future__ import annotations

import csv
import json
import random
import uuid

import pytest
import yaml
from mlflow import MlflowClient

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_DVC, EXIT_OK
from test_faults import rebuild, versions

from conftest import BIN, git, run
from test_shapes import Shape, make_repo, validate

pytestmark = pytest.mark.integration
PERSIST = Shape("persist-outputs")
SCRATCH = "stage 'train' trains from scratch: its persisted output(s) checkpoints/state.json"


def export(path, ids: range, seed: int) -> None:
    """The data pipeline's newest export: `id,x,label` rows."""
    rng = random.Random(seed)
    rows = []
    for n in ids:
        x = rng.random()
        rows.append(f"r{n},{x:.6f},{int(x + rng.gauss(0, 0.1) > 0.6)}")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def source(tmp_path, monkeypatch):
    path = tmp_path / "exports" / "latest.csv"
    path.parent.mkdir()
    export(path, range(200), seed=1)
    monkeypatch.setenv("INGEST_SOURCE", str(path))  # where the data pipeline leaves its export
    return path


def committed(repo, *paths: str) -> dict[str, str]:
    """These outputs as the lock on origin's main records them, pulled from the remote."""
    clone = repo.clone(f"after-{uuid.uuid4().hex[:6]}") / PERSIST.folder
    run(str(BIN / "dvc"), "pull", "-q", *paths, cwd=clone)
    return {path: (clone / path).read_text() for path in paths}


def ids(text: str) -> list[str]:
    return [row[0] for row in csv.reader(text.splitlines()) if row]


def test_a_forced_retrain_keeps_the_records_a_collecting_stage_gathered_before(tmp_path, bucket, mlflow_env, source):
    repo = make_repo(PERSIST, tmp_path, remote=f"s3://{bucket.name}/dvc")
    export(source, range(150, 350), seed=2)  # the next export: 150 new records, 50 already collected
    proc, out, _summary = rebuild(repo.clone("ci"), PERSIST.folder, f"persist-{uuid.uuid4().hex[:8]}",
                                  "--force-all", "true", "--reason", "nightly scheduled retrain")
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert out["committed"] == "true" and out["model-version"], out
    records = ids(committed(repo, "data/records.csv")["data/records.csv"])
    assert records == [f"r{n}" for n in range(350)]  # the earlier 200, then the 150 new ones, once each
    assert "their stages keep while they re-run (`persist: true`), as dvc.lock records them: data/records.csv" in proc.stdout
    assert proc.stdout.count(SCRATCH) == 1, proc.stdout[-4000:]  # the checkpoint is the model stage's
    message = git("log", "-1", "--format=%B", "main", cwd=repo.origin)
    assert "Changed: data/records.csv (modified)" in message, message


@pytest.mark.parametrize("in_git", [False, True], ids=["cached", "git-carried"])
def test_the_model_stage_trains_from_scratch_never_from_the_developer_s_checkpoint(tmp_path, bucket, mlflow_env, source,
                                                                                   in_git):
    """A cached checkpoint is not pulled; one git carries (`cache: false`), which CI's checkout
    holds, is removed before the stage runs, as DVC removes an output that does not persist."""
    repo = make_repo(PERSIST, tmp_path, remote=f"s3://{bucket.name}/dvc")
    if in_git:
        dvc_yaml = repo.project / "dvc.yaml"
        dvc_yaml.write_text(dvc_yaml.read_text().replace(
            "      - checkpoints/state.json:\n          persist: true\n",
            "      - checkpoints/state.json:\n          persist: true\n          cache: false\n"))
        (repo.project / "checkpoints" / ".gitignore").unlink()
    # the developer's training resumed from a checkpoint of a long history on their machine
    (repo.project / "checkpoints" / "state.json").write_text(json.dumps({"runs": 5, "marker": "developer-laptop"}))
    run(str(BIN / "dvc"), "repro", "-f", "-s", "train", cwd=repo.project)
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    assert json.loads((repo.project / "models" / "model.json").read_text())["marker"] == "developer-laptop"
    repo.dvc("push")
    repo.commit("resumed from my checkpoint")
    repo.set_steps(30)
    repo.commit("thirty steps, lock left to CI")

    proc, out, _summary = rebuild(repo.clone("ci"), PERSIST.folder, f"persist-{uuid.uuid4().hex[:8]}")
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert out["stages"] == "train evaluate" and out["committed"] == "true", out
    assert proc.stdout.count(SCRATCH) == 1, proc.stdout[-4000:]
    assert "the copy dvc.lock records is the developer's" in proc.stdout
    files = committed(repo, "models/model.json", *([] if in_git else ["checkpoints/state.json"]))
    if in_git:
        assert "checkpoints/state.json" in git("show", "--name-only", "--format=", "main", cwd=repo.origin)
        files["checkpoints/state.json"] = git("show", "main:ml/checkpoints/state.json", cwd=repo.origin)
    model, state = json.loads(files["models/model.json"]), json.loads(files["checkpoints/state.json"])
    assert (model["runs"], model["marker"]) == (1, "") and state == {"runs": 1, "marker": ""}, files
    # and that model, not one resumed from the developer's checkpoint, is the registered version
    version = MlflowClient(mlflow_env.url).get_model_version(repo.model_name, out["model-version"])
    lock = yaml.safe_load(git("show", "main:ml/dvc.lock", cwd=repo.origin))
    (md5,) = [o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models/model.json"]
    assert version.tags["lockstep.model_md5"] == md5


def test_a_persisted_output_missing_from_the_remote_stops_the_rebuild_before_anything_runs(tmp_path, bucket, mlflow_env,
                                                                                          source):
    repo = make_repo(PERSIST, tmp_path, remote=f"s3://{bucket.name}/dvc")
    lock = yaml.safe_load((repo.project / "dvc.lock").read_text())
    (md5,) = [o["md5"] for o in lock["stages"]["collect"]["outs"]]
    bucket.client.delete_object(Bucket=bucket.name, Key=f"dvc/files/md5/{md5[:2]}/{md5[2:]}")  # never pushed
    export(source, range(200, 300), seed=2)
    before, head = bucket.keys(), git("rev-parse", "main", cwd=repo.origin)
    experiment = f"persist-{uuid.uuid4().hex[:8]}"

    proc, _out, summary = rebuild(repo.clone("ci"), PERSIST.folder, experiment, "--force-all", "true")
    assert proc.returncode == EXIT_DVC, proc.stdout[-4000:] + proc.stderr[-2000:]
    message = proc.stdout.replace("%0A", "\n")
    assert f"data/records.csv of stage 'collect' (md5 {md5[:12]})" in message, message[-3000:]
    assert "`dvc push data/records.csv`" in message and "lockstep ran, pushed, committed and registered nothing" in message
    assert "data/records.csv of stage 'collect'" in summary
    assert "collected" not in proc.stderr and "Running stage" not in proc.stderr  # no stage ran
    assert bucket.keys() == before  # nothing pushed
    assert git("rev-parse", "main", cwd=repo.origin) == head  # nothing committed
    assert versions(mlflow_env.url, repo.model_name) == []  # nothing registered
    assert MlflowClient(mlflow_env.url).get_experiment_by_name(experiment) is None  # not even a run


SCORE_CACHE = '''"""Accuracy of the threshold on the collected records, kept in a score cache by threshold."""
import csv
import json
import os

threshold = json.load(open("models/model.json"))["threshold"]
cache = json.load(open("reports/scores.json")) if os.path.exists("reports/scores.json") else {}
if str(threshold) not in cache:
    rows = [(float(x), int(y)) for _id, x, y in csv.reader(open("data/records.csv"))]
    cache[str(threshold)] = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
os.makedirs("reports", exist_ok=True)
json.dump(cache, open("reports/scores.json", "w"))
json.dump({"accuracy": cache[str(threshold)]}, open("metrics.json", "w"))
'''


@pytest.mark.parametrize("in_git", [False, True], ids=["cached", "git-carried"])
def test_an_evaluation_s_persisted_cache_never_decides_its_metrics(tmp_path, bucket, mlflow_env, source, in_git):
    """The evaluation reads back a score cache it keeps (`persist: true`). A pull request that
    doctors it, and its metrics, with a consistent lock: its re-evaluation starts without the cache
    and disagrees; merged, the rebuild's metrics are CI's own."""
    repo = make_repo(PERSIST, tmp_path, remote=f"s3://{bucket.name}/dvc")
    (repo.project / "evaluate.py").write_text(SCORE_CACHE)
    dvc_yaml = repo.project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text() + "    outs:\n      - reports/scores.json:\n          persist: true\n"
                        + ("          cache: false\n" if in_git else ""))
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    repo.dvc("push")
    base = repo.commit("the evaluation keeps a score cache")

    git("checkout", "-q", "-b", "better", cwd=repo.dev)
    repo.set_steps(30)
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    threshold = json.loads((repo.project / "models" / "model.json").read_text())["threshold"]
    (repo.project / "reports" / "scores.json").write_text(json.dumps({str(threshold): 0.999}))
    (repo.project / "metrics.json").write_text(json.dumps({"accuracy": 0.999}))
    repo.dvc("commit", "-f", "-q")  # the lock records the doctored files: it is consistent
    repo.dvc("push")
    head = repo.commit("thirty steps", "better")
    git("checkout", "-q", "main", cwd=repo.dev)

    proc, _results, checks = validate(repo, repo.clone("ci-pr", "better"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    assert checks["lock-vs-code"]["status"] == "pass" and checks["lock-vs-remote"]["status"] == "pass", checks
    assert checks["re-evaluation"]["status"] == "fail", checks["re-evaluation"]
    if in_git:
        assert "removed before the re-evaluation, as DVC removes an output that does not persist: reports/scores.json" \
            in proc.stdout

    git("push", "-q", "origin", "better:main", cwd=repo.dev)  # merged as it is
    proc, out, _summary = rebuild(repo.clone("ci"), PERSIST.folder, f"persist-{uuid.uuid4().hex[:8]}",
                                  "--force-all", "true")
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "the persisted output(s) reports/scores.json (stage 'evaluate') (`persist: true`) are not restored" in proc.stdout
    accuracy = json.loads(git("show", "main:ml/metrics.json", cwd=repo.origin))["accuracy"]
    assert accuracy != 0.999 and 0.5 < accuracy < 1, accuracy
    version = MlflowClient(mlflow_env.url).get_model_version(repo.model_name, out["model-version"])
    assert float(version.tags["lockstep.metric.accuracy"]) == accuracy
