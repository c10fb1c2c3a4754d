"""Project shapes through the real workflows under act, as a team adopts lockstep: `lockstep init`
writes the config and the consumer workflows, the team commits them and changes nothing else.
One PR run and one main rebuild per shape; the last test is a PR that tries to write its own
verdict (a loosened gate and an evaluation that inflates its score) through pr-validate.yml."""

from __future__ import annotations

import json

import pytest

from actrunner import REPOSITORY, pr_payload, push_payload
from conftest import git
from github_api import TOKEN
from test_shapes import SHAPES, make_repo, open_pr
from test_trust import EDITABLE_INSTALL, good_main, pull_request, retrain, set_gate_min, worse_model

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
BY_NAME = {shape.name: shape for shape in [*SHAPES, EDITABLE_INSTALL]}


def env_for(repo, api) -> dict[str, str]:
    return {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPOSITORY, "LOCKSTEP_TEST_ORIGIN": f"file://{repo.origin}"}


# A project in a folder and one at the repository's root: the two wirings `lockstep init` writes.
# Every shape goes through the CLI in test_shapes.py; what a workflow run adds is the wiring, and
# the setup action's install of the project's own package (`-e .` in requirements.txt).
@pytest.mark.parametrize("name", ["ignored-results", "root-env", "editable-install"])
def test_shape_through_the_real_workflows(name, tmp_path, act, api):
    shape = BY_NAME[name]
    repo = make_repo(shape, tmp_path, init=True)  # lockstep init wrote lockstep.yaml and .github/workflows
    base, head, _checkout = open_pr(repo, "better", steps=50)
    git("checkout", "-q", "better", cwd=repo.dev)  # act runs the working tree it is given: the PR's
    result = act.run(repo.dev, "pull_request", "ml-pr.yml", payload=pr_payload(4, base, head, head_ref="better"),
                     secrets={"GITHUB_TOKEN": TOKEN}, env=env_for(repo, api))
    assert result.returncode == 0, result.log[-6000:]
    label = REPOSITORY.split("/")[1] if shape.root else "ml"  # a root project is named after the repository
    (body,) = [c["body"] for c in api.comment_objects(REPOSITORY, 4)]
    assert body.startswith(f"<!-- lockstep:report project={label} -->")
    results = json.loads(next(act.artifacts.glob("lockstep-report-*/results.json")).read_text())
    assert results["passed"] is True and results["project"] == label

    # the merge, then the main rebuild: a [skip ci] lock commit, never an ignored file
    git("checkout", "-q", "main", cwd=repo.dev)
    git("merge", "-q", "--ff-only", "better", cwd=repo.dev)
    params = repo.project / shape.params
    params.write_text(params.read_text().replace("steps: 50", "steps: 30"))  # a param change merged without its lock
    merged = repo.commit("merge, then thirty steps")
    result = act.run(repo.dev, "push", "ml-main.yml", payload=push_payload(merged), secrets={"GITHUB_TOKEN": TOKEN},
                     env=env_for(repo, api))
    assert result.returncode == 0, result.log[-6000:]
    top = git("log", "-1", "--format=%an %s", "main", cwd=repo.origin)
    assert top.startswith("github-actions[bot] lockstep: rebuild") and top.endswith("[skip ci]")
    files = repo.origin_files()
    for path in shape.ignored:
        assert f"ml/{path}" not in files


def test_a_pr_that_writes_its_own_verdict_fails_through_the_real_workflow(tmp_path, act, api):
    repo = make_repo(BY_NAME["cached-stage-metrics"], tmp_path, init=True)
    config = repo.project / "lockstep.yaml"
    config.write_text(config.read_text().replace("max-regression-relative: 0.05}", "min: 0.5, max-regression-relative: 0.05}"))
    good_main(repo)

    def looser_gate_and_kinder_evaluation(repo):
        worse_model(repo)
        set_gate_min(repo, 0.1)
        evaluate = repo.project / "evaluate.py"
        evaluate.write_text(evaluate.read_text().replace("scores[split] = sum(", "scores[split] = 0.3 + sum(", 1))
        retrain(repo)

    base, head, _checkout = pull_request(repo, "kind", looser_gate_and_kinder_evaluation)
    git("checkout", "-q", "kind", cwd=repo.dev)  # act runs the working tree it is given: the PR's
    result = act.run(repo.dev, "pull_request", "ml-pr.yml", payload=pr_payload(9, base, head, head_ref="kind"),
                     secrets={"GITHUB_TOKEN": TOKEN}, env=env_for(repo, api))
    assert result.returncode != 0
    results = json.loads(next(act.artifacts.glob("lockstep-report-*/results.json")).read_text())
    checks = {c["id"]: c for c in results["checks"]}
    assert results["passed"] is False and checks["gates"]["status"] == "fail"
    assert checks["trusted-evaluation"]["status"] == "warn" and checks["config"]["status"] == "warn"
    (body,) = [c["body"] for c in api.comment_objects(REPOSITORY, 9)]
    assert "failed validation" in body and "Trusted evaluation" in body
