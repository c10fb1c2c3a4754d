"""A model added with `dvc add` (trained outside DVC, `models/model.pkl.dvc`) that the evaluation
stage depends on: `lockstep init` says so, PR validation re-evaluates the added model, and a main
rebuild, having nothing to retrain, stops before doing anything and says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lockstep import cli
from lockstep.errors import EXIT_OK, EXIT_USAGE

from conftest import git

pytestmark = pytest.mark.unit

EVALUATE = """import json, pickle
model = pickle.load(open("models/model.pkl", "rb"))
json.dump({"accuracy": 0.9 + model["w"] / 100}, open("metrics.json", "w"))
"""
DVC_YAML = """stages:
  evaluate:
    cmd: python evaluate.py
    deps: [models/model.pkl, evaluate.py]
    metrics:
      - metrics.json:
          cache: false
"""


def _dvc(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True)


def _train(project: Path, weight: int) -> None:
    """The developer's training, outside DVC, then `dvc add`, `dvc repro` (the evaluation), `dvc push`."""
    import pickle

    (project / "models").mkdir(exist_ok=True)
    (project / "models" / "model.pkl").write_bytes(pickle.dumps({"w": weight}))
    _dvc("add", "-q", "models/model.pkl", cwd=project)
    _dvc("repro", "-q", cwd=project)
    _dvc("push", "-q", cwd=project)


@pytest.fixture
def added(tmp_path, monkeypatch, capsys):
    origin, root = tmp_path / "origin.git", tmp_path / "repo"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(root), cwd=tmp_path)
    for key, value in (("user.name", "dev"), ("user.email", "dev@example.com")):
        git("config", key, value, cwd=root)
    git("remote", "add", "origin", str(origin), cwd=root)
    project = root / "ml"
    project.mkdir()
    _dvc("init", "-q", "--subdir", cwd=project)
    _dvc("remote", "add", "-q", "-d", "storage", str(tmp_path / "dvc-remote"), cwd=project)
    (project / "evaluate.py").write_text(EVALUATE)
    (project / "dvc.yaml").write_text(DVC_YAML)
    _train(project, 1)
    monkeypatch.chdir(project)
    capsys.readouterr()
    assert cli.main(["init", "--working-directory", str(project), "--repository", "octo/ml"]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())
    assert ("Note: the model models/model.pkl is added with `dvc add` (models/model.pkl.dvc): no stage in dvc.yaml trains it. "
            "PR validation re-evaluates it as it is; a main rebuild (ml-main.yml, ml-retrain.yml) has nothing to retrain "
            "and stops (exit 2)") in out, out
    git("add", "-A", cwd=root)
    git("commit", "-qm", "the project, adopted", cwd=root)
    git("push", "-q", "origin", "main", cwd=root)
    return tmp_path, root, project


def test_a_pull_request_that_adds_a_better_model_is_re_evaluated_and_passes(added, capsys):
    tmp_path, root, project = added
    base = git("rev-parse", "HEAD", cwd=root)
    _train(project, 3)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "a better model", cwd=root)
    code = cli.main(["validate", "--working-directory", str(project), "--base-sha", base,
                     "--head-sha", git("rev-parse", "HEAD", cwd=root), "--report-dir", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    checks = {check["id"]: check for check in json.loads((tmp_path / "report" / "results.json").read_text())["checks"]}
    assert checks["re-evaluation"]["status"] == "pass", checks["re-evaluation"]
    assert "re-ran evaluate on the developer's model" in checks["re-evaluation"]["summary"]
    assert checks["pull"]["summary"].startswith("pulled models/model.pkl")


@pytest.mark.parametrize("extra", [(), ("--force-all", "true"), ("--stages", "evaluate"), ("--set-params", "x=1")])
def test_a_rebuild_stops_before_anything_and_says_the_model_is_added_not_built(added, capsys, extra):
    tmp_path, root, project = added
    remote_before = sorted(str(path) for path in (tmp_path / "dvc-remote").rglob("*"))
    pushed = git("rev-parse", "main", cwd=tmp_path / "origin.git")
    code = cli.main(["rebuild", "--working-directory", str(project), *extra])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code == EXIT_USAGE, out
    flat = " ".join(out.split())
    assert ("model.path: 'models/model.pkl' is added with `dvc add` (models/model.pkl.dvc), and no stage in dvc.yaml "
            "retrains it: a main rebuild has nothing to rebuild, and stopped before pulling, pushing, committing or "
            "registering anything") in flat, out
    assert "`dvc remove models/model.pkl.dvc`, then `dvc stage add -n train" in flat
    assert "stage '' not found" not in out
    assert git("rev-parse", "main", cwd=tmp_path / "origin.git") == pushed
    assert sorted(str(path) for path in (tmp_path / "dvc-remote").rglob("*")) == remote_before
    assert git("status", "--porcelain", cwd=root) == ""  # not even params set
