"""A pull request cannot write its own verdict: each test is a bypass an adversarial contributor
would try, through the real CLI on real DVC repositories (tests/projects shapes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_OK

from conftest import BIN, ROOT, git, lockstep, run
from test_shapes import SHAPES, Shape, make_repo, validate

pytestmark = pytest.mark.integration
SEPARATE_EVALUATION = next(s for s in SHAPES if s.name == "cached-stage-metrics")
ONE_STAGE = next(s for s in SHAPES if s.name == "one-stage")
# the project's package installed by `-e .` in requirements.txt (as on the developer's machine, where
# PYTHONPATH stands in for it); CI's environment comes from the setup action (set_up_environments)
EDITABLE_INSTALL = Shape("editable-install", model="artifacts/model.json", env=(("PYTHONPATH", "src"),))


def retrain(repo, *, push: bool = True) -> None:
    run(str(BIN / "dvc"), "repro", cwd=repo.project, env=repo.shape.dev_env)
    if push:
        repo.dvc("push")


def set_gate_min(repo, value: float) -> None:
    config = repo.project / "lockstep.yaml"
    text = config.read_text()
    start = text.index("min: ") + len("min: ")
    end = text.index(",", start)
    config.write_text(text[:start] + str(value) + text[end:])


def good_main(repo, *, gate_min: float = 0.9) -> None:
    """main holds a good model (50 steps) and a strict gate."""
    repo.set_steps(50)
    set_gate_min(repo, gate_min)
    retrain(repo)
    repo.commit("good model, strict gate")


def pull_request(repo, branch: str, change) -> tuple[str, str, Path]:
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", branch, cwd=repo.dev)
    change(repo)
    head = repo.commit(branch, branch)
    git("checkout", "-q", "main", cwd=repo.dev)
    return base, head, repo.clone(f"ci-{branch}", branch)


def worse_model(repo) -> None:
    text = (repo.project / repo.shape.params).read_text()
    (repo.project / repo.shape.params).write_text(text.replace("steps: 50", "steps: 1"))


def worse_with_kind_evaluation(repo) -> None:
    """A worse model, and an evaluation that adds 0.3 to its score."""
    worse_model(repo)
    evaluate = repo.project / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace('scores[split] = sum(', 'scores[split] = 0.3 + sum(', 1))
    retrain(repo)


def test_a_pr_that_loosens_its_own_gate_is_judged_by_the_base_gate(tmp_path):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)

    def worse_and_looser(repo):
        worse_model(repo)
        set_gate_min(repo, 0.5)
        retrain(repo)

    base, head, checkout = pull_request(repo, "looser", worse_and_looser)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    assert checks["gates"]["status"] == "fail" and "below the minimum 0.9" in checks["gates"]["summary"]
    assert checks["config"]["status"] == "warn"
    assert "gates.accuracy.min 0.9 -> 0.5: applies after merge" in checks["config"]["details"]


def test_a_pr_changing_only_lockstep_yaml_shows_the_proposal_and_passes_by_the_base(tmp_path):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)
    base, head, checkout = pull_request(repo, "stricter", lambda repo: set_gate_min(repo, 0.99))
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]  # 0.99 would fail; it applies after merge
    assert "gates.accuracy.min 0.9 -> 0.99: applies after merge" in checks["config"]["details"]
    assert checks["trusted-evaluation"]["summary"].startswith("not needed")


def test_a_pr_whose_evaluation_code_inflates_its_score_is_judged_by_the_base_evaluation(tmp_path):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)

    base, head, checkout = pull_request(repo, "kind-eval", worse_with_kind_evaluation)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    assert checks["re-evaluation"]["status"] == "pass"  # the PR's evaluation agrees with itself
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "warn" and "needs a maintainer's review" in trusted["summary"]
    assert "(accuracy: base's evaluation 0.65 · this PR's evaluation 0.95; 2 more)" in trusted["summary"]  # the gap, said
    assert "::warning title=lockstep%3A Trusted evaluation::needs a maintainer" in proc.stdout  # an annotation too
    assert "evaluate.py changed (stage 'evaluate')" in trusted["details"]
    side = next(d for d in trusted["details"] if d.startswith("accuracy:"))
    assert "base's evaluation 0.65" in side and "this PR's evaluation 0.95" in side
    assert checks["gates"]["status"] == "fail"  # by the base's evaluation: 0.65 < 0.9
    # the base's evaluation ran before any of the PR's code could change what it runs with
    assert proc.stdout.index("::group::the base's evaluation on this PR's model") < proc.stdout.index("::group::re-evaluate in CI")
    accuracy = next(row for row in results["metrics"] if row["name"] == "accuracy")
    assert accuracy["pr"] == pytest.approx(0.65)


# What an adversary puts beside evaluate.py: `import csv` there gets this file, which is the real csv
# module except that, in the evaluation, every row reads as a right answer. dvc.yaml does not list
# it, so DVC's lock check and the evaluation's declared dependencies see no change.
SHADOW_CSV = """
import importlib.util, json, sys, sysconfig
_spec = importlib.util.spec_from_file_location("_csv_stdlib", sysconfig.get_paths()["stdlib"] + "/csv.py")
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)
globals().update({k: v for k, v in vars(_real).items() if not k.startswith("__")})


def reader(lines, *args, **kwargs):
    rows = _real.reader(lines, *args, **kwargs)
    if not sys.argv[0].endswith("evaluate.py"):
        return rows
    threshold = json.load(open("model.json"))["threshold"]
    return ([x, "1" if float(x) > threshold else "0"] for x, _y in rows)
"""


# The PR's dvc.yaml may also declare the module (here a package folder) an output of a stage of
# its own: what the evaluation may run is judged by what the BASE declares.
DECLARED_AN_OUTPUT = "  keep:\n    cmd: 'true'\n    outs:\n      - csv:\n          cache: false\n          persist: true\n"


@pytest.mark.parametrize("declared", [False, True], ids=["beside", "declared-an-output-by-the-pr"])
def test_a_module_that_shadows_a_library_beside_the_evaluation_cannot_inflate_the_score(tmp_path, declared):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)
    module = repo.project / ("csv/__init__.py" if declared else "csv.py")

    def worse_with_a_shadowing_module(repo):
        worse_model(repo)
        module.parent.mkdir(exist_ok=True)
        module.write_text(SHADOW_CSV)
        if declared:
            dvc_yaml = repo.project / "dvc.yaml"
            dvc_yaml.write_text(dvc_yaml.read_text() + DECLARED_AN_OUTPUT)
        retrain(repo, push=False)
        # DVC's run cache knows this model's evaluation from before (csv.py is no dependency of it):
        # the adversary runs it again for real, and commits what the shadow makes of it
        run(str(BIN / "dvc"), "repro", "--force", "--single-item", "evaluate", cwd=repo.project)
        repo.dvc("push")

    base, head, checkout = pull_request(repo, "shadow", worse_with_a_shadowing_module)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    assert checks["lock-vs-code"]["status"] == "pass"  # DVC sees nothing: csv.py is no dependency
    assert checks["re-evaluation"]["status"] == "pass"  # and the PR's evaluation agrees with itself
    trusted = checks["trusted-evaluation"]
    shadow = module.relative_to(repo.dev).as_posix()
    assert trusted["status"] == "warn" and f"which dvc.yaml does not declare ({shadow})" in trusted["summary"], trusted
    assert "gives other metrics than this PR's own" in trusted["summary"]
    side = next(d for d in trusted["details"] if d.startswith("accuracy:"))
    assert "base's evaluation 0.65" in side and "this PR's evaluation 1" in side
    assert checks["gates"]["status"] == "fail"  # by the base's evaluation: 0.65 < 0.9
    assert proc.stdout.index("::group::the base's evaluation on this PR's model") < proc.stdout.index("::group::re-evaluate in CI")
    assert next(row for row in results["metrics"] if row["name"] == "accuracy")["pr"] == pytest.approx(0.65)


# A package a PR adds to its requirements: its .pth file runs at every interpreter start-up of the
# environment it is installed in, and patches csv.reader as SHADOW_CSV does.
PATCHING_PACKAGE = {
    "pyproject.toml": '[project]\nname = "csv-speedups"\nversion = "1.0"\n[build-system]\nrequires = ["setuptools"]\n'
                      'build-backend = "setuptools.build_meta"\n[tool.setuptools]\npy-modules = ["csv_speedups"]\n',
    "csv_speedups.py": (
        "import csv, json, sys\n_reader = csv.reader\n"
        "def reader(lines, *args, **kwargs):\n"
        "    rows = _reader(lines, *args, **kwargs)\n"
        "    if not sys.argv[0].endswith('evaluate.py'):\n        return rows\n"
        "    threshold = json.load(open('model.json'))['threshold']\n"
        "    return ([x, '1' if float(x) > threshold else '0'] for x, _y in rows)\n"
        "csv.reader = reader\n"
    ),
    "setup.py": ("from setuptools import setup\nfrom setuptools.command.build_py import build_py\n"
                 "class with_pth(build_py):\n    def run(self):\n        super().run()\n"
                 "        open(self.build_lib + '/csv_speedups.pth', 'w').write('import csv_speedups\\n')\n"
                 "setup(cmdclass={'build_py': with_pth})\n"),
}


def set_up_environments(checkout: Path, tmp_path: Path) -> dict[str, str]:
    """The setup action, as pr-validate.yml runs it in the PR's checkout: lockstep's environment
    and the PR's project environment. Returns what the job's later steps get (the project's python
    first on PATH, LOCKSTEP_PROJECT_REQUIREMENTS)."""
    runner, github_env = tmp_path / "runner", tmp_path / "github-env.txt"
    setup = subprocess.run(["bash", str(ROOT / "actions" / "setup" / "setup.sh"), "install"], cwd=checkout, capture_output=True, text=True,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "SETUP_"))},
                                "RUNNER_TEMP": str(runner), "GITHUB_ACTION_PATH": str(ROOT / "actions" / "setup"),
                                "GITHUB_OUTPUT": str(tmp_path / "out.txt"), "GITHUB_PATH": str(tmp_path / "path.txt"),
                                "GITHUB_ENV": str(github_env), "SETUP_WORKING_DIRECTORY": "ml"})
    assert setup.returncode == 0, setup.stdout + setup.stderr
    project_bin = runner / "lockstep" / "project" / "bin"
    requirements = next(line.split("=", 1)[1] for line in github_env.read_text().splitlines() if line.startswith("LOCKSTEP_PROJECT_REQUIREMENTS="))
    return {**os.environ, "LOCKSTEP_PROJECT_REQUIREMENTS": requirements, "PATH": f"{project_bin}{os.pathsep}{os.environ['PATH']}"}


def validate_in(checkout: Path, base: str, head: str, env: dict[str, str], report: Path):
    proc = lockstep("validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head, "--pr-number", "3",
                    "--repository", "acme/churn-model", "--report-dir", str(report), cwd=checkout,
                    env={**env, "GITHUB_ACTIONS": "true"})
    return proc, {c["id"]: c for c in json.loads((report / "results.json").read_text())["checks"]}


def test_a_package_the_pr_adds_cannot_inflate_the_score_of_the_base_evaluation(tmp_path):
    """The base's evaluation of a PR that changes its packages runs in an environment installed from
    the base's requirements: in the PR's, the PR's package would patch the base's evaluation too."""
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)
    shadow = tmp_path / "developer-shadow"
    shadow.mkdir()
    (shadow / "csv.py").write_text(SHADOW_CSV)  # what the package does, on the developer's machine

    def worse_with_a_patching_package(repo):
        worse_model(repo)
        for name, text in PATCHING_PACKAGE.items():
            (repo.project / "csv-speedups" / name).parent.mkdir(parents=True, exist_ok=True)
            (repo.project / "csv-speedups" / name).write_text(text)
        requirements = repo.project / "requirements.txt"
        requirements.write_text(requirements.read_text() + "./csv-speedups\n")
        retrain(repo, push=False)
        run(str(BIN / "dvc"), "repro", "--force", "--single-item", "evaluate", cwd=repo.project, env={"PYTHONPATH": str(shadow)})
        repo.dvc("push")

    base, head, checkout = pull_request(repo, "package", worse_with_a_patching_package)
    env = set_up_environments(checkout, tmp_path)
    patched = subprocess.run(["python", "-c", "import csv; print(csv.reader.__module__)"], capture_output=True, text=True, env=env)
    assert patched.stdout.strip() == "csv_speedups"  # the PR's environment runs the package
    proc, checks = validate_in(checkout, base, head, env, tmp_path / "report")
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    assert checks["packages"]["status"] == "warn"
    assert checks["re-evaluation"]["status"] == "pass"  # in the PR's environment the PR's evaluation agrees with itself
    trusted = checks["trusted-evaluation"]
    assert "the base's evaluation ran in an environment from the base's requirements" in trusted["summary"]
    assert next(d for d in trusted["details"] if d.startswith("accuracy:")).startswith("accuracy: base's evaluation 0.65 · this PR's evaluation 1")
    assert checks["gates"]["status"] == "fail"  # by the base's evaluation, in the base's environment: 0.65 < 0.9
    assert "::group::the base's project environment" in proc.stdout


def test_the_projects_own_package_installed_from_the_pr_cannot_inflate_the_base_evaluation(tmp_path):
    """`-e .` in requirements.txt installs the project's package from the PR's checkout: the base's
    evaluation script would import the PR's helpers through it. It runs in an environment installed
    from the base's checkout instead."""
    repo = make_repo(EDITABLE_INSTALL, tmp_path)
    good_main(repo)

    def worse_with_kind_scoring(repo):
        worse_model(repo)
        scoring = repo.project / "src" / "churnkit" / "components" / "scoring.py"
        scoring.write_text(scoring.read_text().replace("return sum(", "return 0.3 + sum(", 1))
        retrain(repo, push=False)  # dvc.yaml does not list scoring.py: DVC's run cache gives back the old scores
        run(str(BIN / "dvc"), "repro", "--force", "--single-item", "evaluate", cwd=repo.project, env=repo.shape.dev_env)
        repo.dvc("push")

    base, head, checkout = pull_request(repo, "kind-scoring", worse_with_kind_scoring)
    env = set_up_environments(checkout, tmp_path)
    proc, checks = validate_in(checkout, base, head, env, tmp_path / "report")
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    assert checks["re-evaluation"]["status"] == "pass", checks["re-evaluation"]  # the PR's evaluation, with the PR's package, agrees with itself
    trusted = checks["trusted-evaluation"]
    assert "ml/src/churnkit/components/scoring.py" in trusted["summary"]
    assert "the base's evaluation ran in an environment from the base's requirements" in trusted["summary"]
    assert "packages installed from this PR's checkout: churnkit" in trusted["details"]
    assert next(d for d in trusted["details"] if d.startswith("accuracy:")).startswith("accuracy: base's evaluation 0.65 · this PR's evaluation 0.95")
    assert checks["gates"]["status"] == "fail"  # by the base's evaluation, with the base's package: 0.65 < 0.9


def test_a_new_file_the_evaluation_does_not_use_is_evaluated_by_the_base_and_passes(tmp_path):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo, gate_min=0.5)

    def helper_and_docs(repo):
        (repo.project / "plotting.py").write_text("def plot(rows):\n    return len(rows)\n")
        (repo.project / "NOTES.md").write_text("# notes\n")  # docs are never code

    base, head, checkout = pull_request(repo, "helper", helper_and_docs)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "pass", trusted
    assert trusted["summary"] == ("this PR changes files its evaluation may import or read, which dvc.yaml does not declare "
                                  "(ml/plotting.py): the base's evaluation of this PR's model gives the same metrics")


def test_a_deliberate_evaluation_change_is_shown_side_by_side_and_marked_for_review(tmp_path):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)

    def stricter_evaluation(repo):
        evaluate = repo.project / "evaluate.py"
        evaluate.write_text(evaluate.read_text().replace('"accuracy": scores["test"]', '"accuracy": scores["test"] - 0.01'))
        retrain(repo)

    base, head, checkout = pull_request(repo, "stricter-eval", stricter_evaluation)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "warn"
    assert any(d.startswith("accuracy: base's evaluation 0.935 · this PR's evaluation 0.925") for d in trusted["details"])


def test_when_the_base_evaluation_cannot_read_the_pr_model_a_maintainer_must_review(tmp_path):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    good_main(repo)

    def new_model_format(repo):
        for name, old, new in (("train.py", '{"threshold": best[2]}', '{"cut": best[2]}'),
                               ("evaluate.py", '["threshold"]', '["cut"]')):
            path = repo.project / name
            path.write_text(path.read_text().replace(old, new))
        retrain(repo)

    base, head, checkout = pull_request(repo, "format", new_model_format)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "fail"
    assert "needs a maintainer's review" in trusted["summary"] and "cannot run on this PR's model" in trusted["summary"]
    assert "KeyError" in trusted["summary"]


def test_a_model_that_holds_autologs_run_id_is_named_as_why_no_retrain_matches(tmp_path):
    """MLflow's autolog sets `_mlflow_run_id` on a fitted estimator, and it is pickled with it: no two
    trainings give the same file. The failure says so and what to change, not "run dvc repro"."""
    repo = make_repo(ONE_STAGE, tmp_path)

    def autolog_like(repo):
        script = repo.project / "train_eval.py"
        script.write_text(script.read_text().replace(
            'json.dump({"threshold": best[2]}, open("model/model.json", "w"))',
            'import uuid\njson.dump({"threshold": best[2], "_mlflow_run_id": uuid.uuid4().hex}, open("model/model.json", "w"))'))
        retrain(repo)

    base, head, checkout = pull_request(repo, "autolog", autolog_like)
    proc, _results, checks = validate(repo, checkout, base, head)
    check = checks["re-evaluation"]
    assert proc.returncode == EXIT_CHECKS_FAILED and check["status"] == "fail", proc.stdout[-3000:]
    assert "the committed model is not what this code trains" in check["summary"]
    assert "`_mlflow_run_id`" in check["summary"] and "del model._mlflow_run_id" in check["summary"]
    assert "Run `dvc repro` from a clean checkout" not in check["summary"]


def replace_model_by_hand(repo) -> None:
    repo.set_steps(50)
    retrain(repo, push=False)
    (repo.project / "model" / "model.json").write_text(json.dumps({"threshold": 0.61}))
    repo.dvc("commit", "-f")
    repo.dvc("push")


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_model_replaced_by_hand_in_a_stage_that_trains_and_evaluates_is_not_called_evaluated(tmp_path, deterministic):
    repo = make_repo(ONE_STAGE, tmp_path)
    if not deterministic:
        config = repo.project / "lockstep.yaml"
        config.write_text(config.read_text() + "evaluation:\n  deterministic: false\n")
        repo.commit("training is not deterministic")
    base, head, checkout = pull_request(repo, "by-hand", replace_model_by_hand)
    proc, _results, checks = validate(repo, checkout, base, head)
    check = checks["re-evaluation"]
    lock = (repo.dev / "ml" / "dvc.lock").read_text()
    if deterministic:
        assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
        assert check["status"] == "fail" and "the committed model is not what this code trains" in check["summary"]
        assert any(d.startswith("committed model md5 ") for d in check["details"])
        assert any(d.startswith("retrained model md5 ") for d in check["details"])
    else:
        assert check["status"] == "warn"
        assert "not the developer's model" in check["summary"] and "was not evaluated" in check["summary"]
    assert "on the developer's model" not in check["summary"]
    assert lock  # the developer's lock is untouched on main


def test_new_packages_or_helpers_for_a_stage_that_trains_and_evaluates_are_marked_for_review(tmp_path):
    """The base's version of such a stage would retrain a model of its own, so it cannot judge the
    PR's: a PR that changes what the stage runs beyond dvc.yaml is marked for a maintainer's review."""
    repo = make_repo(ONE_STAGE, tmp_path)

    def new_package_and_helper(repo):
        requirements = repo.project / "requirements.txt"
        requirements.write_text(requirements.read_text() + "six>=1.16\n")
        (repo.project / "helpers.py").write_text("def mean(xs):\n    return sum(xs) / len(xs)\n")

    base, head, checkout = pull_request(repo, "packages", new_package_and_helper)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert checks["packages"]["status"] == "warn"
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "warn" and "review how the metrics are computed" in trusted["summary"]
    assert trusted["details"] == ["ml/helpers.py (not declared in dvc.yaml; the evaluation may import or read it)",
                                  "the project's packages (the Packages check lists them)"]


def test_pr_code_runs_without_secrets_and_what_it_logs_to_mlflow_is_forwarded(tmp_path, mlflow_env):
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    secrets = {
        "AWS_SECRET_ACCESS_KEY": "canary-aws-secret",
        "AWS_ACCESS_KEY_ID": "canary-aws-key",
        "GITHUB_TOKEN": "canary-github-token",
        "MLFLOW_TRACKING_PASSWORD": "canary-mlflow-password",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "canary-oidc",
        "ACTIONS_RUNTIME_TOKEN": "canary-runtime",
        "LOCKSTEP_PUSH_TOKEN": "canary-push",
    }

    def nosy_evaluation(repo):
        evaluate = repo.project / "evaluate.py"
        evaluate.write_text(evaluate.read_text() + (
            "\nimport mlflow\n"
            "json.dump(dict(os.environ), open(os.path.join(os.path.expanduser('~'), 'stage-env-' + os.environ.get('PROBE', '') + '.json'), 'w'))\n"
            "if os.environ.get('GITHUB_OUTPUT'):\n"
            "    open(os.environ['GITHUB_OUTPUT'], 'a').write('passed=true\\n')\n"
            "with mlflow.start_run():\n"
            "    mlflow.log_metric('stage_logged', 0.5)\n"
            "    mlflow.log_param('stage_param', 'x')\n"
            "    mlflow.log_metric('accuracy', 0.99, step=9)\n"  # beside the accuracy lockstep computes
            "    mlflow.set_tag('lockstep.verdict', 'pass')\n"
            "    with mlflow.start_run(nested=True):\n"
            "        mlflow.log_metric('inner', 1.0)\n"
        ))
        retrain(repo)

    base, head, checkout = pull_request(repo, "nosy", nosy_evaluation)
    home = tmp_path / "home"
    home.mkdir()
    report = checkout.parent / "nosy-report"
    outputs = checkout.parent / "nosy-outputs.txt"
    from conftest import lockstep

    proc = lockstep(
        "validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head, "--pr-number", "5",
        "--report-dir", str(report), cwd=checkout,
        env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), "HOME": str(home), "PROBE": "pr", **secrets},
    )
    results = json.loads((report / "results.json").read_text())
    dumped = json.loads((home / "stage-env-pr.json").read_text())
    text = json.dumps(dumped)
    for name, value in secrets.items():
        assert value not in text, name
    assert "GITHUB_OUTPUT" not in dumped
    assert outputs.read_text().count("passed") == 1  # lockstep's own output line, nothing the stage wrote
    assert dumped["MLFLOW_TRACKING_URI"].startswith("file:")
    # what the project's code logged locally reached the PR's run on the real server
    from mlflow import MlflowClient

    # in a child run of the PR's run: the PR's run itself holds only what lockstep measured
    client = MlflowClient(mlflow_env.url)
    pr_run = client.get_run(results["mlflow_run_id"])
    assert "stage_logged" not in pr_run.data.metrics and "stage_param" not in pr_run.data.params
    children = client.search_runs([pr_run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{pr_run.info.run_id}'")
    assert len(children) == 1, (results["checks"], proc.stdout[-3000:])
    logged = children[0].data
    assert logged.metrics["stage_logged"] == 0.5 and logged.params["stage_param"] == "x"
    assert logged.tags["lockstep.kind"] == "project-code-run" and children[0].info.status == "FINISHED"
    assert "lockstep.verdict" not in logged.tags  # the code's own lockstep.* tags are not forwarded
    assert pr_run.data.metrics.get("accuracy") != 0.99 and pr_run.data.tags["lockstep.verdict"] in ("pass", "fail")
    nested = client.search_runs([pr_run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{children[0].info.run_id}'")
    assert [run.data.metrics for run in nested] == [{"inner": 1.0}]  # nested as the code nested it
    assert proc.returncode in (EXIT_OK, EXIT_CHECKS_FAILED)


def test_metrics_no_evaluation_stage_writes_stay_the_prs_beside_the_base_evaluation(tmp_path):
    """A training run's own metrics file, committed as it is (dvclive's layout in DVC's experiments
    example): the base's evaluation judges what the evaluation writes, and the training metrics
    shown and gated are the PR's, not the base commit's copy of that file."""
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    train = repo.project / "train.py"
    train.write_text(train.read_text() + 'json.dump({"train_steps": train["steps"]}, open("train_metrics.json", "w"))\n')
    dvc_yaml = repo.project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text() + "metrics:\n  - train_metrics.json\n")
    config = repo.project / "lockstep.yaml"
    config.write_text(config.read_text() + "  train_steps: {direction: higher}\n")  # a gate on what CI does not recompute
    good_main(repo)
    assert json.loads((repo.project / "train_metrics.json").read_text()) == {"train_steps": 50}

    base, head, checkout = pull_request(repo, "kind-eval", worse_with_kind_evaluation)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    rows = {row["name"]: row for row in results["metrics"]}
    assert rows["accuracy"]["pr"] == pytest.approx(0.65)  # the base's evaluation of the PR's model
    assert (rows["train_steps"]["base"], rows["train_steps"]["pr"]) == (50, 1)  # the PR's own training run
    trusted = checks["trusted-evaluation"]
    assert not any(d.startswith("train_steps:") for d in trusted["details"])  # not part of the side by side
    assert any(d.startswith("train_steps: the committed value; no evaluation stage writes it") for d in checks["gates"]["details"])


def test_a_gate_that_passes_on_a_value_the_pr_committed_is_for_a_maintainer_to_weigh(tmp_path):
    """A gate on a metric no evaluation stage writes (the training run's own file, which the PR
    commits): CI cannot recompute it, so a pass there is the PR's own word. The verdict does not
    fail, and does not pass either: the gates check asks for a review, and says which metric."""
    repo = make_repo(SEPARATE_EVALUATION, tmp_path)
    train = repo.project / "train.py"
    train.write_text(train.read_text() + 'json.dump({"train_steps": train["steps"]}, open("train_metrics.json", "w"))\n')
    dvc_yaml = repo.project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text() + "metrics:\n  - train_metrics.json\n")
    config = repo.project / "lockstep.yaml"
    config.write_text(config.read_text() + "  train_steps: {direction: higher, min: 40}\n")
    good_main(repo)

    def edited_number(repo) -> None:  # the committed training metric, written by hand: CI never recomputes it
        (repo.project / "train_metrics.json").write_text('{"train_steps": 99}')

    base, head, checkout = pull_request(repo, "edited", edited_number)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    gates = checks["gates"]
    assert gates["status"] == "warn", gates
    assert gates["summary"].endswith("passed, train_steps on the value the pull request committed, which CI does not recompute: "
                                     "a maintainer's review decides"), gates["summary"]
    assert {row["name"]: row["pr"] for row in results["metrics"]}["train_steps"] == 99
