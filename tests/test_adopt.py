"""`lockstep init`'s choice of gates: one per metric that scores the model, none on what a pull
request legitimately moves (a training-split score, a param written back as a metric, a count)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockstep import adopt, config

# (metrics as `dvc metrics show` names them, params, gates chosen, metrics named as not gated)
CASES = [
    pytest.param(  # DVC's get-started project: avg_prec and roc_auc per split
        {"avg_prec.train": 0.97, "avg_prec.test": 0.92, "roc_auc.train": 0.98, "roc_auc.test": 0.94}, {},
        {"avg_prec.test": "higher", "roc_auc.test": "higher"},
        {"avg_prec.train", "roc_auc.train"}, id="split-keys"),
    pytest.param(  # splits in the metric's own name, lower-is-better kept
        {"accuracy": 0.9, "train_accuracy": 0.95, "val_loss": 0.3, "train_loss": 0.2}, {},
        {"accuracy": "higher", "val_loss": "lower"},
        {"train_accuracy", "train_loss"}, id="split-prefixes"),
    pytest.param(  # one metrics file per split (a `foreach` or `matrix` evaluation)
        {"metrics/train.json:accuracy": 0.9, "metrics/test.json:accuracy": 0.8}, {},
        {"metrics/test.json:accuracy": "higher"},
        {"metrics/train.json:accuracy"}, id="split-files"),
    pytest.param(  # only a training split: it is all there is to gate
        {"acc.train": 0.9}, {}, {"acc.train": "higher"}, set(), id="training-split-only"),
    pytest.param(  # the regression template many projects copy: params echoed into a metrics file
        {"report/scores.json:rmse": 0.7, "report/scores.json:mae": 0.5, "report/scores.json:r2": 0.3,
         "report/params.json:alpha": 0.9, "report/params.json:l1_ratio": 0.4},
        {"estimators.ElasticNet.params.alpha": 0.9, "estimators.ElasticNet.params.l1_ratio": 0.4, "base.random_state": 42},
        {"report/scores.json:mae": "lower", "report/scores.json:r2": "higher", "report/scores.json:rmse": "lower"},
        {"report/params.json:alpha", "report/params.json:l1_ratio"}, id="params-echoed"),
    pytest.param(  # dvclive in DVC's experiments example: the training run's file and the evaluation's, one key each
        {"results/train/metrics.json:train.accuracy": 0.79, "results/train/metrics.json:test.loss": 3.6,
         "results/evaluate/metrics.json:test.accuracy": 0.73},
        {}, {"results/evaluate/metrics.json:test.accuracy": "higher", "results/train/metrics.json:test.loss": "lower"},
        {"results/train/metrics.json:train.accuracy"}, id="split-in-key-and-folder"),
    pytest.param(  # a param's name, another value: a score after all
        {"alpha": 0.5}, {"train.alpha": 0.9}, {"alpha": "higher"}, set(), id="param-name-other-value"),
]


@pytest.mark.parametrize(("metrics", "params", "gates", "not_gated"), CASES)
def test_gates_are_chosen_for_what_scores_the_model(metrics, params, gates, not_gated):
    chosen, skipped = adopt.choose_gates(metrics, params)
    assert chosen == gates
    assert {name for name, _why in skipped} == not_gated


def test_only_what_the_evaluation_writes_is_gated_when_it_is_known():
    """What CI recomputes is what the evaluation stages write: a training run's own metrics file
    (committed as the developer's run left it) is listed, not gated."""
    metrics = {"results/train/metrics.json:test.loss": 3.6, "results/evaluate/metrics.json:test.accuracy": 0.73}
    gates, skipped = adopt.choose_gates(metrics, {}, evaluated={"results/evaluate/metrics.json:test.accuracy"})
    assert gates == {"results/evaluate/metrics.json:test.accuracy": "higher"}
    assert skipped == [("results/train/metrics.json:test.loss", "written by no evaluation stage: CI does not recompute it")]


def test_a_classification_report_gates_its_aggregates_first_and_no_counts():
    report = {"accuracy": 0.9, "model": "xgboost"}
    for group in ("0", "1", "2", "macro avg", "weighted avg"):
        report |= {f"{group}.precision": 0.9, f"{group}.recall": 0.8, f"{group}.f1-score": 0.85, f"{group}.support": 50}
    gates, skipped = adopt.choose_gates(report, {})
    why = dict(skipped)
    assert len(gates) == adopt.MAX_GATES
    assert {"accuracy", "macro avg.f1-score", "weighted avg.recall"} <= set(gates)
    assert why["0.support"] == "a count, not a score" and not any(name.endswith("support") for name in gates)
    assert why["2.recall"].startswith("more than 12 metrics")
    assert "model" not in gates and "model" not in why  # a label, neither gated nor listed


def test_the_metrics_left_ungated_are_listed_in_the_config_it_writes():
    plan = adopt.Plan(project=Path("."), folder=".", label="churn", model_name="churn", model_path="model.pkl",
                      evaluation_stages=["evaluate"], gates={"avg_prec.test": "higher"},
                      not_gated=[("avg_prec.train", "a training-split score; its held-out one is gated")])
    text = adopt.config_text(plan)
    assert "#   avg_prec.train: a training-split score; its held-out one is gated\n" in text
    loaded = config.load_text(text, "lockstep.yaml")
    assert [gate.metric for gate in loaded.gates] == ["avg_prec.test"]


def test_a_score_that_can_be_near_zero_gets_an_absolute_allowance():
    plan = adopt.Plan(project=Path("."), folder=".", label="wine", model_name="wine", model_path="model.joblib",
                      evaluation_stages=["train_and_evaluate"], gates={"report/scores.json:r2": "higher", "report/scores.json:rmse": "lower"})
    loaded = {gate.metric: gate for gate in config.load_text(adopt.config_text(plan), "lockstep.yaml").gates}
    assert "r2\": {direction: higher, max-regression: 0.05}" in adopt.config_text(plan)
    assert "rmse\": {direction: lower, max-regression-relative: 0.05}" in adopt.config_text(plan)
    assert set(loaded) == {"report/scores.json:r2", "report/scores.json:rmse"}


# --- the stages' requirements where the setup action does not look by default ----------------------

DVC_YAML = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs: [model.pkl]
  evaluate:
    cmd: python evaluate.py
    deps: [model.pkl, evaluate.py]
    metrics:
      - metrics.json:
          cache: false
"""


def _adoptable(tmp_path: Path, files: dict[str, str], folder: str = "ml") -> Path:
    """A throwaway repository with a DVC project in `folder` ('.' at the root), its first
    `dvc repro` as if done (metrics written), and `files` relative to the repository's root."""
    import subprocess
    import sys

    root = tmp_path / "repo"
    project = root / folder
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", *(["--subdir"] if folder != "." else [])], cwd=project, check=True)
    for name, text in {f"{folder}/dvc.yaml": DVC_YAML, f"{folder}/metrics.json": '{"accuracy": 0.9}\n',
                       f"{folder}/train.py": "", f"{folder}/evaluate.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return project


def _init(project: Path, capsys) -> tuple[int, str, dict[str, dict]]:
    import yaml

    from lockstep import cli

    capsys.readouterr()
    code = cli.main(["init", "--working-directory", str(project), "--repository", "octo/ml"])
    out = capsys.readouterr().out
    workflows = project.parent / ".github" / "workflows" if project.name == "ml" else project / ".github" / "workflows"
    calls = {}
    for name in adopt.WORKFLOWS:
        jobs = yaml.safe_load((workflows / name).read_text())["jobs"]
        calls[name] = next(job for job in jobs.values() if "with" in job)["with"]
    return code, out, calls


@pytest.mark.parametrize(("files", "folder", "expected"), [
    ({"ml/requirements/base.txt": "pyyaml\n", "ml/requirements/train.txt": "-r base.txt\nsix\n",
      "ml/requirements/dev.txt": "-r train.txt\npytest\n", "ml/requirements/docs.txt": "sphinx\n"},
     "ml", "requirements/base.txt requirements/train.txt"),
    ({"ml/requirements-train.txt": "six\n", "ml/requirements-dev.txt": "pytest\n"}, "ml", "requirements-train.txt"),
    ({"ml/gpu-requirements.txt": "six\n", "ml/test_requirements.txt": "pytest\n"}, "ml", "gpu-requirements.txt"),
    ({"requirements/common.txt": "six\n", "requirements/lint.txt": "ruff\n"}, "ml", "../requirements/common.txt"),
    ({"requirements/base.txt": "six\n", "requirements/serve.txt": "fastapi\n"}, ".", "requirements/base.txt"),
    ({"ml/requirements-dev.txt": "pytest\n", "requirements/ml.txt": "six\n", "requirements/api.txt": "fastapi\n"}, "ml",
     "../requirements/api.txt ../requirements/ml.txt"),
    # the folder's files named as if they were beside it: their part beside `requirements` counts
    ({"ml/requirements/train-requirements.txt": "six\n", "ml/requirements/pipe-requirements.txt": "six\n",
      "ml/requirements/dev-requirements.txt": "pytest\n"}, "ml", "requirements/train-requirements.txt"),
    ({"requirements/requirements_base.txt": "six\n", "requirements/requirements_serve.txt": "fastapi\n"}, ".",
     "requirements/requirements_base.txt"),
], ids=["folder-base-and-train", "dash-train", "suffix-one-left", "root-of-a-sub-folder-project", "project-at-root",
        "developer-file-here-all-of-the-root-s", "folder-suffixed-names", "folder-prefixed-names"])
def test_init_writes_the_requirements_the_setup_would_not_find(tmp_path, capsys, files, folder, expected):
    """No default requirements file, but files that look like requirements: the setup action would
    stop (exit 2) asking for the `requirements` input. `lockstep init` writes its best guess into
    every workflow that installs the stages' requirements, with the rule as a comment to review,
    and says what it chose."""
    import subprocess

    from conftest import BIN

    project = _adoptable(tmp_path, files, folder)
    code, out, calls = _init(project, capsys)
    assert code == 0, out
    for name in ("ml-pr.yml", "ml-main.yml", "ml-retrain.yml"):
        assert calls[name]["requirements"] == expected, name
    assert "requirements" not in calls["ml-pr-comment.yml"]
    workflows = sorted((project.parent if folder == "ml" else project).joinpath(".github", "workflows").glob("*.yml"))
    text = next(path for path in workflows if path.name == "ml-pr.yml").read_text()
    assert "# REVIEW `requirements`: no file the setup installs by default" in text
    assert "without the ones for developers (dev, test, lint, docs)" in " ".join(text.replace("#", " ").split())
    flat = " ".join(out.split())
    assert f"Requirements: the workflows pass `requirements: {expected}` to the setup (REVIEW" in flat, out
    lint = subprocess.run([str(BIN / "actionlint"), "-color=false", *map(str, workflows)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    audit = subprocess.run([str(BIN / "zizmor"), "--offline", "--persona", "pedantic", "--no-progress", *map(str, workflows)],
                           capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_init_writes_no_requirements_when_the_setup_finds_them_or_only_developer_files(tmp_path, capsys):
    found = _adoptable(tmp_path / "a", {"ml/requirements.txt": "six\n", "ml/requirements-dev.txt": "pytest\n"})
    code, out, calls = _init(found, capsys)
    assert code == 0 and all("requirements" not in call for call in calls.values()) and "Requirements:" not in out
    developers = _adoptable(tmp_path / "b", {"ml/requirements-dev.txt": "pytest\n", "ml/requirements/test.txt": "pytest\n"})
    code, out, calls = _init(developers, capsys)
    assert code == 0 and all("requirements" not in call for call in calls.values())
    flat = " ".join(out.split())
    assert ("Note: requirements/test.txt, requirements-dev.txt look like the project's requirements, but only for developers"
            in flat), out


@pytest.mark.parametrize("files", [
    {"ml/requirements/base.txt": "", "ml/requirements/train.txt": "", "ml/requirements-dev.txt": ""},
    {"ml/train_requirements.txt": "", "requirements/base.txt": "", "requirements-ci.txt": ""},
    {"requirements/base.txt": "", "requirements/dev.txt": ""},
    {"ml/pyproject.toml": "[tool.ruff]\nline-length = 100\n", "ml/requirements-gpu.txt": ""},  # tools' settings only
    {"ml/pyproject.toml": "[project]\nname = 'ml'\n", "ml/requirements-gpu.txt": ""},
    {"requirements.txt": "", "ml/requirements/base.txt": ""},
    {"ml/notes.txt": "", "ml/requirements.in": ""},
    {"ml/requirements/train-requirements.txt": "", "ml/requirements/pipe-requirements.txt": "",
     "ml/requirements/requirements-dev.txt": ""},
], ids=["folder-and-dash", "suffix-and-root", "root-only", "tools-pyproject", "project-pyproject", "root-default", "none",
        "folder-named-as-beside"])
def test_init_and_the_setup_action_see_the_same_requirements(tmp_path, files):
    """adopt.py lists requirements as actions/setup/setup.sh does: the same default, or the same
    files when there is none (the setup then stops), and the input init infers satisfies the setup."""
    from test_setup import setup

    project = _adoptable(tmp_path, files)
    root = project.parent
    proc, values = setup("plan", project, root)
    default = adopt.default_requirements(project, root)
    if proc.returncode == 2:
        assert default == ""
        listed = proc.stderr.split(" but ", 1)[1].split(" look like ", 1)[0].split(", ")
        assert sorted(listed) == sorted(adopt.unlisted_requirements(project, root)), proc.stderr
        inferred = adopt.infer_requirements(project, root)
        assert inferred is not None and inferred.entries
        proc, values = setup("plan", project, root, SETUP_REQUIREMENTS=" ".join(inferred.entries))
        assert proc.returncode == 0, proc.stderr
        assert [str((root / p).resolve()) for p in values["requirements"].splitlines()] == [
            str((project / entry).resolve()) for entry in inferred.entries]
    else:
        assert proc.returncode == 0, proc.stderr
        expected = [str((project / default).resolve())] if default else []
        assert [str((root / p).resolve()) for p in values["requirements"].splitlines()] == expected
        assert adopt.infer_requirements(project, root) is None


SCALAR_YAML = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs: [model.pkl]
  evaluate:
    cmd: python evaluate.py
    deps: [model.pkl, evaluate.py]
    metrics:
      - metrics.txt:
          cache: false
      - report.csv:
          cache: false
"""


def test_a_file_of_one_number_is_named_by_its_path_and_a_csv_is_said_to_give_none(tmp_path, capsys):
    """`metrics.txt` holding `0.93` is the metric `metrics.txt`, as `dvc metrics show` names it
    (it was read as nothing, and init said "run dvc repro"); a CSV, which DVC reads as one string,
    is named with the reason and the fix instead of being silently empty."""
    from lockstep import dvcrepo

    project = _adoptable(tmp_path, {"ml/dvc.yaml": SCALAR_YAML, "ml/metrics.txt": "0.93\n",
                                    "ml/report.csv": "accuracy,rows\n0.93,200\n"})
    read = dvcrepo.read_metrics(dvcrepo.open_repo(project))
    assert read.values == {"metrics.txt": 0.93}  # the CSV is one text to DVC: no metric, said below
    assert list(read.no_numbers) == ["report.csv"] and "CSV" in read.no_numbers["report.csv"]
    assert "write the metrics as JSON or YAML" in read.no_numbers["report.csv"]
    code, out, _calls = _init(project, capsys)
    assert code == 0, out
    cfg = config.load(project, required=True)
    assert [(g.metric, g.direction) for g in cfg.gates] == [("metrics.txt", "higher")]
    assert "no gate for report.csv holds no number DVC can read" in out
    assert "run `dvc repro` first" not in out


# --- the environment the stages need to import the project's own code ---------------------------

SRC_LAYOUT_DVC_YAML = """stages:
  evaluate:
    cmd: python src/cnnClassifier/pipeline/stage_04_evaluation.py
    deps: [src/cnnClassifier]
    metrics:
      - metrics.json:
          cache: false
"""
SRC_LAYOUT = {"ml/dvc.yaml": SRC_LAYOUT_DVC_YAML, "ml/setup.py": "from setuptools import setup\nsetup(name='cnnClassifier')\n",
              "ml/src/cnnClassifier/__init__.py": "", "ml/src/cnnClassifier/pipeline/__init__.py": "",
              "ml/src/cnnClassifier/pipeline/stage_04_evaluation.py":
                  "from cnnClassifier.components.evaluation import Evaluation\n"}


@pytest.mark.parametrize(("extra", "env"), [
    ({"ml/requirements.txt": "pyyaml\n"}, {"PYTHONPATH": "src"}),  # never installed: PYTHONPATH is how it imports
    ({"ml/requirements.txt": "pyyaml\n-e .\n"}, None),  # installed by the requirements the setup installs
    ({"ml/requirements.txt": "pyyaml\n", "ml/src/cnnClassifier/pipeline/stage_04_evaluation.py": "import json\n"}, None),
], ids=["script-path-not-installed", "installed-by-requirements", "imports-nothing-of-its-own"])
def test_init_gives_a_src_layout_script_run_by_its_path_the_path_it_imports_from(tmp_path, capsys, extra, env):
    """`python src/<pkg>/pipeline/stage_04_evaluation.py` importing `<pkg>` (a `setup.py`, never
    installed: the developer's IDE or shell puts `src` on the path): `env: {PYTHONPATH: src}`."""
    project = _adoptable(tmp_path, {**SRC_LAYOUT, **extra})
    code, out, _calls = _init(project, capsys)
    assert code == 0, out
    assert config.load(project).env == (env or {})


# --- dvclive's default folder when dvc.yaml declares no metrics ----------------------------------

DVCLIVE_FILES = {  # what `Live()` leaves after `log_param`, `log_metric` per step and `end()`
    "ml/dvclive/metrics.json": '{"step": 2, "accuracy": 0.91, "loss": 0.27}\n',
    "ml/dvclive/params.yaml": "epochs: 3\n",
    "ml/dvclive/plots/metrics/accuracy.tsv": "step\taccuracy\n0\t0.8\n1\t0.9\n2\t0.91\n",
}


def _evaluation_yaml(outs: str) -> str:
    return DVC_YAML.split("    metrics:")[0] + outs


@pytest.mark.parametrize(("outs", "why"), [
    ("    outs: [dvclive]\n", "dvclive/metrics.json (dvclive's metrics file, in the output folder dvclive)"),
    ("", "dvclive/metrics.json (dvclive's default metrics file, which no stage declares as an output)"),
], ids=["declared-folder", "undeclared"])
def test_init_takes_dvclives_metrics_file_when_nothing_declares_metrics(tmp_path, capsys, outs, why):
    """An evaluation that logs with dvclive (`Live()`, its default folder `dvclive/`) and declares
    the folder as a plain output, or not at all: dvclive/metrics.json is the metrics, for review."""
    project = _adoptable(tmp_path, {"ml/dvc.yaml": _evaluation_yaml(outs), **DVCLIVE_FILES})
    (project / "metrics.json").unlink()  # only dvclive writes metrics here
    code, out, _calls = _init(project, capsys)
    assert code == 0, out
    cfg = config.load(project, required=True)
    assert cfg.metrics_files == ("dvclive/metrics.json",) and cfg.evaluation_stages == ("evaluate",)
    assert {(g.metric, g.direction) for g in cfg.gates} == {("accuracy", "higher"), ("loss", "lower")}  # not `step`
    text = (project / "lockstep.yaml").read_text()
    assert "metrics:\n  files: [dvclive/metrics.json]   # REVIEW\n" in text
    assert "  stages: [evaluate]   # REVIEW\n" in text
    assert why in " ".join(line.lstrip("# ") for line in text.splitlines())
    assert f"lockstep reads {why} as the metrics (`metrics.files`), written by evaluate" in " ".join(out.split()), out


def test_init_reads_dvclives_metrics_file_declared_under_metrics_as_any_other(tmp_path, capsys):
    outs = "    outs: [dvclive/plots]\n    metrics:\n      - dvclive/metrics.json:\n          cache: false\n"
    project = _adoptable(tmp_path, {"ml/dvc.yaml": _evaluation_yaml(outs), **DVCLIVE_FILES})
    code, out, _calls = _init(project, capsys)
    assert code == 0, out
    cfg = config.load(project, required=True)
    assert cfg.metrics_files is None and cfg.evaluation_stages == ("evaluate",)
    assert {g.metric for g in cfg.gates} == {"accuracy", "loss"}
    assert "REVIEW: dvc.yaml declares no metrics" not in (project / "lockstep.yaml").read_text()


def test_init_finds_dvclives_metrics_file_in_the_listing_dvc_lock_records(tmp_path, capsys):
    """The folder output `dvclive` is not in the workspace (a fresh clone, before `dvc pull`): the
    listing dvc.lock records for it, in the cache, holds metrics.json."""
    import shutil

    from dvc.repo import Repo

    from lockstep import cli

    from conftest import _rebind_dvc_logging, git
    from localbed import _dvc_repo

    root = tmp_path / "repo"
    root.mkdir()
    git("init", "-q", "-b", "main", str(root), cwd=tmp_path)
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n    outs: [model.pkl]\n"
        "  evaluate:\n    cmd: python evaluate.py\n    deps: [evaluate.py, model.pkl]\n    outs: [dvclive]\n")
    (root / "train.py").write_text("open('model.pkl', 'w').write('m')\n")
    (root / "evaluate.py").write_text("import json, os\nos.makedirs('dvclive/plots/metrics', exist_ok=True)\n"
                                      "json.dump({'step': 2, 'accuracy': 0.91}, open('dvclive/metrics.json', 'w'))\n")
    _rebind_dvc_logging()
    Repo.init(str(root)).close()
    with _dvc_repo(root) as repo:
        repo.reproduce()
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "first model", cwd=root)
    shutil.rmtree(root / "dvclive")
    capsys.readouterr()
    code = cli.main(["init", "--working-directory", str(root), "--repository", "octo/ml"])
    out = capsys.readouterr().out
    assert code == 0, out
    cfg = config.load(root, required=True)
    assert cfg.metrics_files == ("dvclive/metrics.json",) and cfg.evaluation_stages == ("evaluate",)
    assert [g.metric for g in cfg.gates] == ["accuracy"]  # read through DVC, from the cache
    assert "dvclive/metrics.json (dvclive's metrics file, in the output folder dvclive)" in " ".join(out.split())


def test_init_without_dvclives_metrics_file_still_says_there_is_nothing_to_validate(tmp_path, capsys):
    from lockstep import cli

    files = {"ml/dvc.yaml": _evaluation_yaml("    outs: [dvclive]\n"), "ml/dvclive/params.yaml": "epochs: 3\n"}
    project = _adoptable(tmp_path, files)
    (project / "metrics.json").unlink()
    capsys.readouterr()
    assert cli.main(["init", "--working-directory", str(project), "--repository", "octo/ml"]) != 0
    captured = capsys.readouterr()
    assert "no stage writes a metrics file DVC knows" in captured.out + captured.err


COMPETING_MODELS = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs: [models/forest.pkl, models/forest_scaler.joblib]
  train_baseline:
    cmd: python train.py baseline
    deps: [train.py]
    outs: [models/baseline.pkl]
  evaluate:
    cmd: python evaluate.py
    deps: [models/forest.pkl, evaluate.py]
    metrics:
      - metrics.json:
          cache: false
  evaluate_baseline:
    cmd: python evaluate.py baseline
    deps: [models/baseline.pkl, evaluate.py]
    metrics:
      - baseline.json:
          cache: false
artifacts:
  forest:
    path: models/forest.pkl
    type: model
"""


def test_init_names_the_other_models_of_a_pipeline_that_trains_several(tmp_path, capsys):
    """Competing models in one pipeline (a forest and a baseline, each trained and evaluated by
    stages of their own, the forest declared under `artifacts:`): lockstep judges one, and init
    says which, and what that means for the others. The forest's scaler, written by the forest's
    stage, is part of that model, not another."""
    project = _adoptable(tmp_path, {"ml/dvc.yaml": COMPETING_MODELS, "ml/baseline.json": '{"accuracy": 0.7}\n'})
    code, out, _calls = _init(project, capsys)
    assert code == 0, out
    said = " ".join(out.split())
    assert config.load(project, required=True).model_path == "models/forest.pkl"  # dvc.yaml's `artifacts:` says
    assert "other stages write outputs that look like models too: models/baseline.pkl (train_baseline)." in said, out
    assert "lockstep judges and rebuilds one model, models/forest.pkl (model.path)" in said

    single = _adoptable(tmp_path / "single", {})
    code, out, _calls = _init(single, capsys)
    assert code == 0 and "look like models too" not in out


ENV_AND_LOGS = """stages:
  setup:
    cmd: uv venv .venv && .venv/bin/pip install -r requirements.txt
    deps: [requirements.txt]
    outs: [.venv]
  train:
    cmd: .venv/bin/python train.py
    deps: [.venv, train.py]
    outs: [models/model.pkl]
    plots:
      - logs/tensorboard:
          cache: false
  evaluate:
    cmd: .venv/bin/python evaluate.py
    deps: [models/model.pkl, evaluate.py]
    metrics:
      - metrics.json:
          cache: false
"""


def test_init_names_an_environment_built_by_a_stage_and_a_runs_logs(tmp_path, capsys):
    """A stage that builds `.venv` as an output (its `pyvenv.cfg` in the workspace), and TensorBoard
    event files declared as plots: init says what each means in CI and what to change."""
    project = _adoptable(tmp_path, {"ml/dvc.yaml": ENV_AND_LOGS, "ml/requirements.txt": "scikit-learn\n",
                                    "ml/.venv/pyvenv.cfg": "home = /Users/dana/.pyenv/versions/3.9.18/bin\n",
                                    "ml/logs/tensorboard/events.out.tfevents.1733220000.laptop": ""})
    code, out, _calls = _init(project, capsys)
    assert code == 0, out
    said = " ".join(out.split())
    assert "stage setup builds a Python environment as an output (.venv)" in said, out
    assert "`.venv/bin/python`" in said
    assert "logs/tensorboard (train) look like a run's logs" in said, out

    plain = _adoptable(tmp_path / "plain", {})
    code, out, _calls = _init(plain, capsys)
    assert code == 0 and "Python environment as an output" not in out and "run's logs" not in out
