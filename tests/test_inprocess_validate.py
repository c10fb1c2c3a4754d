"""`lockstep validate` in process: a real DVC repository with a local remote, a SQLite MLflow store."""

from __future__ import annotations

import json
import re

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_CONFIG, EXIT_OK

from conftest import PROJECT, git
from test_cli_contract import action_outputs

pytestmark = pytest.mark.unit


def validate(bed, checkout, *extra, base=None, head=None, env=None, tampering=False):
    report = bed.root / f"{checkout.name}-report"
    run = bed.cli(
        "validate", "--working-directory", str(checkout / PROJECT), "--base-sha", base or bed.sha("main"),
        "--head-sha", head or bed.sha("feature"), "--pr-number", "12", "--report-dir", str(report), *extra,
        report_dir=report, env=env,
    )
    if "stops here with no verdict" in run.outputs.get("error", "") and not tampering:
        pytest.fail(f"the guard stopped a validation that changes nothing it watches: {run.outputs['error']}")
    return run


def test_happy_path_reports_and_logs_to_mlflow(bed):
    bed.use_mlflow()
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout)
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert run.results["passed"] is True
    statuses = [run.checks[k]["status"] for k in ("lock-vs-code", "lock-vs-remote", "pull", "re-evaluation", "base", "gates", "mlflow")]
    assert statuses == ["pass"] * 7
    assert run.outputs["passed"] == "true"
    # the PR's model (a pickle) loads only what the base's CI-built model loads
    assert run.checks["model-load"]["status"] == "pass"
    assert run.checks["model-load"]["summary"] == "models/model.pkl: loading it runs only what the base's version loads"
    assert "packages" not in run.checks  # the PR changed params, not its packages
    assert action_outputs("validate") <= set(run.outputs)  # what actions/validate/action.yml reads
    assert run.outputs["report-dir"] == str(bed.root / "ci-report")
    assert run.outputs["mlflow-run-id"] == run.results["mlflow_run_id"] != ""
    assert "## ✅ lockstep: example\\-project passed validation" in run.summary
    assert "| train.n\\_estimators | 100 | 150 |" in run.summary
    # only what evaluation reads was pulled: the model and the prepared data
    assert (checkout / PROJECT / "models" / "model.pkl").is_file()
    assert (checkout / PROJECT / "data" / "prepared" / "test.csv").is_file()
    from mlflow import MlflowClient

    mlflow_run = MlflowClient(bed.tracking_uri).get_run(run.results["mlflow_run_id"])
    assert mlflow_run.data.tags["lockstep.pr"] == "12"
    assert mlflow_run.data.tags["lockstep.head_sha"] == bed.sha("feature")
    assert mlflow_run.data.params["train.n_estimators"] == "150"
    assert mlflow_run.info.status == "FINISHED"
    # the wall time of every step, in order, for a phase breakdown (the job log and results.json)
    from lockstep.validate import STEPS, step_id

    assert [step["id"] for step in run.results["steps"]] == ["open", *(step_id(s) for s in STEPS)]
    assert all(isinstance(step["seconds"], float) and step["seconds"] >= 0 for step in run.results["steps"])
    assert "time per step: open " in run.stdout and " · mlflow " in run.stdout
    # the re-evaluation (the PR's code) was checked for changes to what lockstep runs after it
    guard = next(line for line in run.stdout.splitlines() if "guard: " in line)
    assert "unchanged by the pull request's code" in guard, guard


def test_stale_lock_names_the_stage_the_param_and_the_fix(bed):
    def more(project):
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("n_estimators: 150", "n_estimators: 175"))

    head = bed.commit_on("feature", "Param without retraining", more)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    assert run.code == EXIT_CHECKS_FAILED
    assert run.outputs["passed"] == "false"
    summary = run.checks["lock-vs-code"]["summary"]
    assert "stage 'train' would re-run because params.yaml:train.n_estimators changed (150 -> 175)" in summary
    assert "Run `dvc repro --downstream train" in summary
    assert run.checks["pull"]["status"] == "skip" and run.checks["re-evaluation"]["status"] == "skip"
    assert "::error title=lockstep%3A dvc.lock vs code::dvc.lock is stale" in run.stdout
    assert not (checkout / PROJECT / "models" / "model.pkl").exists()


def test_a_lock_made_from_a_crlf_checkout_matches_the_same_code_with_lf(bed):
    # Windows with core.autocrlf: DVC hashed src/evaluate.py as checked out there, with CRLF;
    # CI's checkout has LF. The code is the same; a real change is still a change.
    import hashlib

    from lockstep import dvcrepo

    project = bed.clone("ci", "feature", depth=1) / PROJECT
    code = (project / "src" / "evaluate.py").read_bytes()
    lock = project / "dvc.lock"
    lf, crlf = (hashlib.md5(text, usedforsecurity=False).hexdigest() for text in (code, code.replace(b"\n", b"\r\n")))
    assert lf in lock.read_text()
    lock.write_text(lock.read_text().replace(lf, crlf))
    assert dvcrepo.stale_stages(dvcrepo.open_repo(project)) == []
    (project / "src" / "evaluate.py").write_bytes(code + b"# changed\n")
    stale = dvcrepo.stale_stages(dvcrepo.open_repo(project))
    assert [s.describe() for s in stale] == ["stage 'evaluate' would re-run because src/evaluate.py was modified"]


def test_object_missing_inside_a_directory_output(bed):
    checkout = bed.clone("ci", "feature", depth=1)
    listing_file = next(p for p in (bed.remote / "files" / "md5").rglob("*.dir"))
    member = next(e for e in json.loads(listing_file.read_text()) if e["relpath"] == "test.csv")
    victim = bed.remote / "files" / "md5" / member["md5"][:2] / member["md5"][2:]
    victim.unlink()
    run = validate(bed, checkout)
    assert run.code == EXIT_CHECKS_FAILED
    remote = run.checks["lock-vs-remote"]
    assert remote["status"] == "fail"
    assert "data/prepared" in remote["summary"] and "Run `dvc push`" in remote["summary"]
    assert remote["details"] == ["data/prepared: test.csv"]
    assert run.checks["pull"]["status"] == "skip"


def test_hand_edited_metrics_are_caught_and_gates_use_the_recomputed_value(bed):
    recomputed = {}

    def edit(project):
        metrics = project / "metrics.json"
        data = json.loads(metrics.read_text())
        recomputed.update(data)
        data["accuracy"] = 0.999
        metrics.write_text(json.dumps(data))

    head = bed.commit_on("feature", "Better numbers", edit)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    assert run.code == EXIT_CHECKS_FAILED
    check = run.checks["re-evaluation"]
    assert check["status"] == "fail"
    assert any(d.startswith("accuracy: committed 0.999, recomputed ") for d in check["details"]), check["summary"]
    row = next(r for r in run.results["metrics"] if r["name"] == "accuracy")
    assert row["pr"] == pytest.approx(recomputed["accuracy"])


def test_failing_gate_names_metric_and_threshold(bed):
    def strict(project):
        config = project / "lockstep.yaml"
        config.write_text(config.read_text().replace("min: 0.90\n    max-regression", "min: 0.999\n    max-regression"))

    bed.commit_on("main", "Stricter gate", strict)  # the base's gates judge a PR
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout)
    assert run.code == EXIT_CHECKS_FAILED
    assert run.checks["gates"]["status"] == "fail"
    accuracy = next(r for r in run.results["metrics"] if r["name"] == "accuracy")
    assert accuracy["gate"] == "fail"
    assert any("0.999" in reason for reason in accuracy["gate_reasons"])
    assert "## ❌ lockstep: example\\-project failed validation (gates)" in run.summary
    assert "::error title=lockstep%3A Gates::" in run.stdout


def test_failing_project_tests_stop_before_evaluation(bed):
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, "--test-command", "python -c 'raise SystemExit(3)'")
    assert run.code == EXIT_CHECKS_FAILED
    assert run.checks["tests"]["status"] == "fail" and "exited with 3" in run.checks["tests"]["summary"]
    assert "re-evaluation" not in run.checks


def test_a_test_command_writing_the_jobs_env_file_and_a_git_hook_gets_no_verdict(bed):
    """What the PR's code changes for the job's later steps (GITHUB_ENV) or for lockstep's own git
    calls (a hook) stops the validation: the env file is put back, no report is left to upload."""
    checkout = bed.clone("ci", "feature", depth=1)
    env_file = bed.root / "set_env_step"
    env_file.write_text("KEPT=1\n")
    hook = checkout / ".git" / "hooks" / "post-checkout"
    command = ("python -c \"import sys; open(sys.argv[1], 'a').write('LD_PRELOAD=/tmp/evil.so\\n'); "
               "open(sys.argv[2], 'w').write('#!/bin/sh')\" " + f"{env_file} {hook}")
    run = validate(bed, checkout, "--test-command", command, env={"GITHUB_ENV": str(env_file)}, tampering=True)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout[-3000:]
    assert env_file.read_text() == "KEPT=1\n"  # the runner will read what lockstep's step had, nothing more
    assert hook.is_file()  # the proof stays; nothing after the check runs git
    error = next(line for line in run.stdout.splitlines() if line.startswith("::error"))
    assert "while the test command ran, the pull request's code changed files" in error
    assert "GITHUB_ENV" in error and "post-checkout (added)" in error and "no verdict" in error
    assert run.results == {} and "report-dir" not in run.outputs  # nothing for the upload and comment steps
    assert "stops here with no verdict" in run.outputs["error"]


def test_a_test_command_replacing_the_bases_metrics_in_git_gets_no_verdict(bed):
    """`git replace` from the PR's code would have the base's committed metrics read as a blob of
    its own choosing (a lower base, so that no regression gate fails): a new ref, but not one like
    any other. The validation stops, and lockstep's git would not have followed it anyway."""
    from lockstep import gitrepo

    checkout = bed.clone("ci", "feature", depth=1)
    base = bed.sha("main")
    git("fetch", "-q", "--depth", "1", "origin", base, cwd=checkout)
    blob = git("rev-parse", f"{base}:{PROJECT}/metrics.json", cwd=checkout)
    command = f"sh -c 'git replace -f {blob} $(echo forged | git hash-object -w --stdin)'"
    run = validate(bed, checkout, "--test-command", command, tampering=True)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout[-3000:]
    error = next(line for line in run.stdout.splitlines() if line.startswith("::error"))
    assert "refs/replace/" + blob in error and "no verdict" in error, error
    assert git("show", f"{base}:{PROJECT}/metrics.json", cwd=checkout) == "forged"  # the replacement is there
    assert "accuracy" in gitrepo.show(checkout, base, f"{PROJECT}/metrics.json")


def test_passing_project_tests_and_a_missing_base(bed):
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, "--test-command", "python -c pass", base="f" * 40)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout  # no base, no verdict
    assert run.checks["tests"]["status"] == "pass"
    assert run.checks["base"]["status"] == "fail" and run.checks["config"]["status"] == "fail"
    assert run.checks["mlflow"]["status"] == "skip"


def test_unparseable_and_unknown_test_commands_are_failed_checks(bed):
    checkout = bed.clone("ci", "feature", depth=1)
    unparseable = validate(bed, checkout, "--test-command", "python -c 'unterminated")
    assert unparseable.checks["tests"]["summary"].startswith("the test command cannot be parsed")
    unknown = validate(bed, checkout, "--test-command", "no-such-command-here")
    assert unknown.checks["tests"]["summary"] == "the test command was not found: no-such-command-here"
    assert unparseable.code == unknown.code == EXIT_CHECKS_FAILED


def test_invalid_config_is_exit_3_with_file_and_line(bed):
    def typo(project):
        config = project / "lockstep.yaml"
        config.write_text(config.read_text().replace("direction: higher", "direction: up", 1))

    head = bed.commit_on("feature", "Typo", typo)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    assert run.code == EXIT_CONFIG
    assert re.search(r"::error title=[^:]*,file=[^,:]*lockstep\.yaml,line=\d+::", run.stdout), run.stdout
    assert "'up' is not one of ['higher', 'lower']" in run.stdout
    assert "error" in run.outputs


def test_mlflow_down_is_a_warning_and_the_report_is_complete(bed):
    from servers import free_port

    def more(project):  # a stale lock: no re-evaluation, the quickest run that reaches MLflow
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("n_estimators: 150", "n_estimators: 175"))

    head = bed.commit_on("feature", "Param without retraining", more)
    bed.monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:hunter2@127.0.0.1:{free_port()}")
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, "--mlflow-experiment", "team/{project}", head=head)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout  # the stale lock, not MLflow
    assert run.checks["mlflow"]["status"] == "warn"
    assert run.checks["mlflow"]["summary"].startswith("the run was not logged: MLflow")
    assert "hunter2" not in json.dumps(run.results) and "hunter2" not in run.stdout
    assert run.results["mlflow_run_id"] == "" and run.outputs["mlflow-run-id"] == ""


class _RunsACommand:
    """What a malicious model file holds: loading it calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def _replace_model(project, model_bytes: bytes, *, reevaluate: bool) -> None:
    """As a developer would: a new models/model.pkl, its lock entries updated, pushed."""
    from localbed import _dvc_repo

    (project / "models" / "model.pkl").write_bytes(model_bytes)
    with _dvc_repo(project) as repo:
        if reevaluate:
            repo.reproduce("evaluate", force=True, single_item=True)
        repo.commit(force=True)
        repo.push()


def test_a_model_file_that_runs_a_command_when_loaded_fails_and_is_never_loaded(bed):
    import pickle

    canary = bed.root / "model-ran-code"
    head = bed.commit_on("feature", "A model that runs a command",
                         lambda project: _replace_model(project, pickle.dumps(_RunsACommand(f"touch {canary}")), reevaluate=False))
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout[-3000:]
    check = run.checks["model-load"]
    assert check["status"] == "fail"
    assert "loading models/model.pkl would run code" in check["summary"] and "posix.system" in check["summary"]
    assert "lockstep did not load it, and no evaluation ran" in check["summary"]
    assert run.checks["re-evaluation"]["status"] == "skip"
    assert not canary.exists()  # nothing loaded the file: neither the re-evaluation nor the base's
    assert run.checks["lock-vs-code"]["status"] == run.checks["pull"]["status"] == "pass"  # an honest lock otherwise


def test_a_model_moved_into_git_by_the_pr_is_scanned_before_anything_loads_it(bed):
    """The PR's dvc.yaml no longer declares the model as the training's output and git carries a
    model that runs a command when loaded: its evaluation now reads it as a file of its own (code,
    to DVC), and the base's evaluation, which this change calls for, would load it. The model that
    lockstep.yaml names is scanned whatever the PR's dvc.yaml says of it."""
    import pickle

    from localbed import _dvc_repo

    canary = bed.root / "model-ran-code"

    def move_into_git(project):
        dvc_yaml = project / "dvc.yaml"
        dvc_yaml.write_text(dvc_yaml.read_text().replace("    outs:\n      - models/model.pkl\n", "", 1))
        ignore = project / ".gitignore"
        ignore.write_text(ignore.read_text().replace("/models/model.pkl\n", ""))
        (project / "models" / "model.pkl").write_bytes(pickle.dumps(_RunsACommand(f"touch {canary}")))
        with _dvc_repo(project) as repo:
            repo.commit(force=True)

    head = bed.commit_on("feature", "The model in git", move_into_git)
    assert "models/model.pkl" in git("ls-tree", "-r", "--name-only", head, cwd=bed.dev)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout[-3000:]
    check = run.checks["model-load"]
    assert check["status"] == "fail", check
    assert "loading models/model.pkl would run code" in check["summary"] and "posix.system" in check["summary"]
    assert not canary.exists()  # neither the re-evaluation nor the base's evaluation loaded it


def test_what_the_base_evaluation_reads_from_the_pr_is_scanned_when_the_prs_dvc_yaml_hides_it(bed):
    """The PR's dvc.yaml stops declaring data/prepared as an output and git carries it, with a
    pickle that runs a command: to the PR's pipeline it is code, so the Model loading check does not
    read it, and the change calls for the base's evaluation, which reads data/prepared from the PR
    as the base's dvc.yaml declares it. It is scanned before it is copied there, and not run."""
    import pickle

    from localbed import _dvc_repo

    canary = bed.root / "data-ran-code"

    def move_into_git(project):
        with _dvc_repo(project) as repo:
            repo.pull()  # the branch's outputs in the workspace, as dvc.lock records them
        dvc_yaml = project / "dvc.yaml"
        dvc_yaml.write_text(dvc_yaml.read_text().replace("    outs:\n      - data/prepared\n", "", 1))
        ignore = project / ".gitignore"
        ignore.write_text(ignore.read_text().replace("/data/prepared\n", ""))
        (project / "data" / "prepared" / "cache.pkl").write_bytes(pickle.dumps(_RunsACommand(f"touch {canary}")))
        with _dvc_repo(project) as repo:
            repo.commit(force=True)

    head = bed.commit_on("feature", "The prepared data in git", move_into_git)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    assert run.code == EXIT_CHECKS_FAILED, run.stdout[-3000:]
    check = run.checks["trusted-evaluation"]
    assert check["status"] == "fail", check
    assert "loading what the base's evaluation reads from this PR would run code" in check["summary"], check
    assert "data/prepared/cache.pkl" in check["summary"] and "posix.system" in check["summary"]
    assert not canary.exists()


def test_a_model_of_a_new_kind_is_evaluated_and_marked_for_review(bed):
    """A model class the base's CI-built model does not use: a legitimate change, or a way to run
    code no list knows about; either way a maintainer sees what loading it calls."""
    import pickle

    import pandas as pd
    from sklearn.ensemble import ExtraTreesClassifier

    def new_kind(project):
        train = pd.read_csv(project / "data" / "prepared" / "train.csv")
        model = ExtraTreesClassifier(n_estimators=20, random_state=0).fit(train.drop(columns=["target"]), train["target"])
        _replace_model(project, pickle.dumps(model, protocol=5), reevaluate=True)

    head = bed.commit_on("feature", "Extra trees", new_kind)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head)
    check = run.checks["model-load"]
    assert check["status"] == "warn", check
    assert check["summary"].startswith("needs a maintainer's review: it loads 2 function(s) or class(es) the base's version does not")
    assert "new: sklearn.ensemble._forest.ExtraTreesClassifier" in check["details"]
    assert "new: sklearn.tree._classes.ExtraTreeClassifier" in check["details"]
    assert run.checks["re-evaluation"]["status"] == "pass"  # it was evaluated: a warning, not a failure
    assert run.code == EXIT_OK, run.stdout[-3000:]


def test_a_pr_changing_the_projects_packages_is_marked_for_review_and_a_comment_is_not_a_change(bed):
    def bump(project):
        requirements = project / "requirements.txt"
        requirements.write_text(requirements.read_text().replace("pandas>=2", "pandas>=2  # data frames\nevil-helper==0.1"))

    head = bed.commit_on("feature", "A new helper package", bump)
    checkout = bed.clone("ci", "feature", depth=1)
    run = validate(bed, checkout, head=head, env={"LOCKSTEP_PROJECT_REQUIREMENTS": "requirements.txt "})
    check = run.checks["packages"]
    assert check["status"] == "warn" and check["summary"].startswith("needs a maintainer's review: this PR changes the packages")
    assert check["details"] == ["requirements.txt: +evil-helper==0.1"]  # the comment beside pandas is no change
    assert run.code == EXIT_OK, run.stdout[-3000:]


def test_a_failed_re_evaluation_says_what_to_do_first_when_lockstep_can_tell_why(bed):
    """A module the stage needs that the project's environment lacks (here a package folder
    that raises as a missing one would): the check's summary, which the annotation and the
    comment show, starts with the fix, then the stage's own last words."""
    def env_from_the_base(project):
        config = project / "lockstep.yaml"
        config.write_text(config.read_text() + "env:\n  PYTHONPATH: shadow\n")

    def shadow(project):
        (project / "shadow" / "sklearn").mkdir(parents=True)
        (project / "shadow" / "sklearn" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'sklearn'\")\n")

    base = bed.commit_on("main", "PYTHONPATH for the stages", env_from_the_base)
    head = bed.commit_on("feature", "A folder the stages import from", shadow)
    run = validate(bed, bed.clone("ci", "feature", depth=1), base=base, head=head)
    assert run.code == EXIT_CHECKS_FAILED
    check = run.checks["re-evaluation"]
    assert check["status"] == "fail"
    assert check["summary"].startswith("the stage imports `sklearn`, which the project's environment does not have"), check["summary"]
    assert "No module named 'sklearn'" in check["summary"]


def _reevaluated(project, edit) -> None:
    """`edit(project)`, then the developer's `dvc repro evaluate` on the PR's model, as committed."""
    from localbed import _dvc_repo

    edit(project)
    with _dvc_repo(project) as repo:
        repo.checkout(force=True)
        repo.reproduce("evaluate", single_item=True)


def test_a_pr_that_changes_the_data_its_evaluation_reads_is_marked_for_review(bed):
    """A PR that makes another test split (prepare.test_size) measures its model on data of its own:
    a smaller or easier split can raise every metric. Its code is the base's, so the base's
    evaluation is not needed, but the check says the comparison is not on the same data."""
    from localbed import _dvc_repo

    def new_split(project):
        with _dvc_repo(project) as repo:
            repo.pull()
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("test_size: 0.25", "test_size: 0.2"))
        with _dvc_repo(project) as repo:
            repo.reproduce()
            repo.push()

    head = bed.commit_on("feature", "A smaller test split", new_split)
    run = validate(bed, bed.clone("ci", "feature", depth=1), head=head)
    assert run.code == EXIT_OK, run.stdout[-3000:]  # a warning: a maintainer decides
    check = run.checks["trusted-evaluation"]
    assert check["status"] == "warn", check
    assert "but it changes the data its evaluation reads (data/prepared (md5 " in check["summary"], check
    assert "not on the same data" in check["summary"]
    assert run.checks["re-evaluation"]["status"] == "pass"


def test_a_re_evaluation_that_reads_no_number_warns_instead_of_passing(bed):
    """An evaluation that writes its scores as text (`"accuracy": "0.95"`, a common slip with
    f-strings): the committed and recomputed files agree, but no number was compared, so the
    re-evaluation says so as a warning, naming the file, instead of passing."""
    def as_text(project):
        script = project / "src" / "evaluate.py"
        script.write_text(script.read_text().replace(
            "json.dumps(metrics, indent=2", 'json.dumps({name: f"{value:.4f}" for name, value in metrics.items()}, indent=2'))

    head = bed.commit_on("feature", "Scores as text", lambda project: _reevaluated(project, as_text))
    assert json.loads((bed.project / "metrics.json").read_text())["accuracy"].startswith("0.")  # text, as committed
    run = validate(bed, bed.clone("ci", "feature", depth=1), head=head)
    check = run.checks["re-evaluation"]
    assert check["status"] == "warn", check
    assert check["summary"] == ("re-ran evaluate on the developer's model, but no numeric metric was compared with a "
                                "committed one; metrics.json: no numeric value read (details)"), check["summary"]
    assert any(line.startswith("metrics.json holds no numeric metric") for line in check["details"]), check["details"]
    # the gates judge the PR's model by the base's evaluation (the PR changed its own), which writes numbers
    assert run.checks["trusted-evaluation"]["status"] == "warn"
    assert re.search(r"accuracy: base's evaluation 0\.\d+ · this PR's evaluation '0\.\d{4}'", run.checks["trusted-evaluation"]["summary"])
    assert run.checks["gates"]["status"] == "pass" and run.code == EXIT_OK


def test_a_re_evaluation_that_reads_numbers_passes_when_the_committed_file_is_not_in_git(bed):
    """The evaluation writes numbers, but the PR keeps metrics.json out of git (`.gitignore`, as
    many projects keep results): nothing committed to compare, and CI read its own numbers, which
    the gates judge. A pass, not the nothing-compared warning."""
    def untracked(project):
        (project / ".gitignore").write_text((project / ".gitignore").read_text() + "/metrics.json\n")
        git("rm", "-q", "--cached", "metrics.json", cwd=project)

    head = bed.commit_on("feature", "Results out of git", untracked)
    assert "metrics.json" not in git("ls-tree", "--name-only", head, cwd=bed.dev).split()
    run = validate(bed, bed.clone("ci", "feature", depth=1), head=head)
    check = run.checks["re-evaluation"]
    assert check["status"] == "pass", check
    assert check["summary"].startswith("re-ran evaluate on the developer's model: 0 metric(s) agree"), check["summary"]
    assert "no numeric metric was compared" not in check["summary"]
    assert run.checks["gates"]["status"] == "pass" and run.code == EXIT_OK, run.checks["gates"]
