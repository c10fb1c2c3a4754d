"""Retrains from outside the repository: `lockstep dispatch` against the GitHub API test server
(requests and responses validated against GitHub's OpenAPI schemas), and the repository_dispatch
payload that `lockstep rebuild` accepts."""

from __future__ import annotations

import json

import pytest
import requests

from lockstep import dispatch
from lockstep.errors import EXIT_GITHUB, EXIT_USAGE, EXIT_WAIT_TIMEOUT, InputError

from conftest import lockstep
from github_api import TOKEN

REPO = "octo/ml"
FAST = ["--poll-interval", "0.01"]


def run_dispatch(api, tmp_path, *args, token=TOKEN, extra_env=None):
    env = {"GITHUB_API_URL": api.url, "GITHUB_OUTPUT": str(tmp_path / "out"), **(extra_env or {})}
    if token is not None:
        env["GITHUB_TOKEN"] = token
    return lockstep("dispatch", *args, cwd=tmp_path, env=env)


def outputs(tmp_path):
    text = (tmp_path / "out").read_text() if (tmp_path / "out").exists() else ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and "<<" not in line)


# --- the API test server knows the Actions endpoints ----------------------------------------------


def test_the_dispatch_and_run_endpoints_are_validated(api):
    ids = {op.id for op in api.ops}
    assert {"actions/create-workflow-dispatch", "actions/list-workflow-runs", "actions/get-workflow-run"} <= ids
    # a request GitHub's schema refuses (no `ref`, inputs not an object) is recorded as a schema error
    requests.post(f"{api.url}/repos/{REPO}/actions/workflows/ml-main.yml/dispatches",
                  json={"inputs": "force-all"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert any("create-workflow-dispatch request" in e for e in api.schema_errors), api.schema_errors
    api.schema_errors.clear()


# --- lockstep dispatch ----------------------------------------------------------------------------


def test_dispatch_sends_the_form_inputs_and_prints_the_run(api, tmp_path):
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--ref", "main",
                        "--force-all", "--stages", "prepare,train", "--set-params", "prepare.snapshot=2026-12-01",
                        "--reason", "new data 2026-12-01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sent,) = api.dispatches
    assert sent == {"repository": REPO, "workflow": "ml-main.yml", "ref": "main", "return_run_details": True,
                    "inputs": {"stages": "prepare train", "force-all": "true",
                               "set-params": "prepare.snapshot=2026-12-01", "reason": "new data 2026-12-01"}}
    (run_id,) = api.runs
    assert f"https://github.example/{REPO}/actions/runs/{run_id}" in proc.stdout
    assert outputs(tmp_path)["run-id"] == str(run_id)
    assert not any(r.path.endswith(f"/runs/{run_id}") for r in api.requests)  # no --wait: no polling


def test_only_given_inputs_are_sent(api, tmp_path):
    """A consumer form without a `stages` input still accepts the dispatch (GitHub refuses
    undeclared inputs with 422)."""
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--reason", "x")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert api.dispatches[0]["inputs"] == {"reason": "x"} and api.dispatches[0]["ref"] == "main"


def test_wait_until_success(api, tmp_path):
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--force-all", "--wait", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id,) = api.runs
    assert f"run {run_id} completed: success https://github.example/{REPO}/actions/runs/{run_id}" in proc.stdout
    assert api.run_polls[run_id] == 3  # queued, in_progress, completed
    assert outputs(tmp_path)["conclusion"] == "success"


def test_wait_for_a_failed_run_exits_1(api, tmp_path):
    api.run_conclusion = "failure"
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--wait", *FAST)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (run_id,) = api.runs
    assert f"run {run_id} concluded failure: https://github.example/{REPO}/actions/runs/{run_id}" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_wait_gives_up_after_the_timeout(api, tmp_path):
    api.run_statuses = ["queued", "in_progress"]
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--wait",
                        "--timeout", "0.2", *FAST)
    assert proc.returncode == EXIT_WAIT_TIMEOUT, proc.stdout + proc.stderr
    assert "is still in_progress after 0.2s" in proc.stdout + proc.stderr


def test_a_server_without_run_details_finds_the_run_by_listing(api, tmp_path):
    api.return_run_details = False
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--wait", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id,) = api.runs
    assert f"run {run_id} completed: success" in proc.stdout
    listing = [r for r in api.requests if r.path.endswith("/actions/workflows/ml-main.yml/runs")]
    assert len(listing) >= 2  # before the dispatch (runs already there) and after it
    assert all(r.query["event"] == ["workflow_dispatch"] and r.query["created"][0].startswith(">=") for r in listing)


def test_an_older_run_is_not_taken_for_the_new_one(api, tmp_path):
    api.return_run_details = False
    first = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml")
    assert first.returncode == 0, first.stdout + first.stderr
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    old, new = sorted(api.runs)
    assert outputs(tmp_path)["run-id"] == str(new) and f"runs/{new}" in proc.stdout


@pytest.mark.parametrize("status, words", [
    (403, ["403 Resource not accessible by personal access token", "`actions: write`", "Actions: write"]),
    (404, ["404 Not Found", "was not found", "Actions: write"]),
])
def test_refusal_names_the_permission(api, tmp_path, status, words):
    api.fault("POST", r"/dispatches$", status, message="Resource not accessible by personal access token" if status == 403 else "Not Found")
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", "--force-all")
    assert proc.returncode == EXIT_GITHUB, proc.stdout + proc.stderr
    for word in words:
        assert word in proc.stdout + proc.stderr, (word, proc.stdout + proc.stderr)
    assert "pull-requests: write" not in proc.stdout  # not the comment command's hint
    assert api.runs == {}


@pytest.mark.parametrize("args, named", [
    (["--repository", "octo", "--workflow", "ml-main.yml"], "--repository"),
    (["--repository", "octo/ml; rm -rf /", "--workflow", "ml-main.yml"], "--repository"),
    (["--repository", REPO, "--workflow", "../ml-main.yml"], "--workflow"),
    (["--repository", REPO, "--workflow", "ml-main.yml", "--ref", "main branch"], "--ref"),
    (["--repository", REPO, "--workflow", "ml-main.yml", "--reason", "x" * 501], "--reason"),
    (["--repository", REPO, "--workflow", "ml-main.yml", "--set-params", "novalue"], "--set-params"),
    (["--repository", REPO, "--workflow", "ml-main.yml", "--stages", "train;ls"], "--stages"),
    (["--repository", REPO, "--workflow", "ml-main.yml", "--timeout", "soon"], "--timeout"),
    (["--repository", REPO, "--workflow", "ml-main.yml", "--force-all", "maybe"], "force-all"),
])
def test_bad_input_exits_2_and_sends_nothing(api, tmp_path, args, named):
    proc = run_dispatch(api, tmp_path, *args)
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert named in proc.stdout + proc.stderr
    assert api.requests == []


def test_no_token_exits_2_and_sends_nothing(api, tmp_path):
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", token=None)
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert "LOCKSTEP_DISPATCH_TOKEN" in proc.stdout + proc.stderr and "Actions: write" in proc.stdout + proc.stderr
    assert api.requests == []


def test_the_dispatch_token_wins_and_is_masked_first(api, tmp_path):
    proc = run_dispatch(api, tmp_path, "--repository", REPO, "--workflow", "ml-main.yml", token="ghs_the_job_token",
                        extra_env={"LOCKSTEP_DISPATCH_TOKEN": TOKEN, "GITHUB_ACTIONS": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == f"::add-mask::{TOKEN}"
    assert {r.headers["Authorization"] for r in api.requests} == {f"Bearer {TOKEN}"}


# --- the repository_dispatch payload ----------------------------------------------------------------


def test_payload_values_become_the_rebuild_inputs():
    request = dispatch.parse_payload(json.dumps({
        "stages": ["prepare"], "force-all": True, "reason": "new data 2026-12-01",
        "set-params": {"prepare.snapshot": "2026-12-01", "train.n_estimators": 200, "train.warm": False},
    }))
    assert request.stages == ["prepare"] and request.force_all is True and request.reason == "new data 2026-12-01"
    assert request.set_params == ["prepare.snapshot=2026-12-01", "train.n_estimators=200", "train.warm=false"]
    assert dispatch.parse_payload('{"stages": "prepare, train", "set-params": ["a.b=1"]}').stages == ["prepare", "train"]
    # another params file is named as lockstep names its params
    other = dispatch.parse_payload('{"set-params": {"config/train.yaml:train.steps": 30}}')
    assert other.set_params == ["config/train.yaml:train.steps=30"]


@pytest.mark.parametrize("text", ["", "null", "{}", "  "])
def test_an_empty_payload_asks_for_nothing(text):
    request = dispatch.parse_payload(text)
    assert (request.stages, request.force_all, request.set_params, request.reason) == (None, None, None, None)


BAD_PAYLOADS = [
    ('{"force_all": true}', "unknown key 'force_all'"),
    ('{"reason": "ok", "command": "rm -rf /"}', "unknown key 'command'"),
    ('{"force-all": "true"}', "force-all: must be boolean, not a string"),
    ('{"reason": 42}', "reason: must be string, not a number"),
    (json.dumps({"reason": "x" * 501}), "reason: longer than 500 characters"),
    ('{"stages": ["train; ls"]}', "stages: must be a list of stage names"),
    ('{"stages": 3}', "stages: must be a list of stage names"),
    ('{"set-params": ["train.n_estimators"]}', "set-params: must be a list of KEY=VALUE"),
    ('{"set-params": {"a": "1\\nSigned-off-by: x"}}', "set-params: must be a list of KEY=VALUE"),
    ('{"set-params": {"a": null}}', "set-params"),
    ('{"set-params": {"a b:c": 1}}', "set-params"),
    ('{"set-params": ["x:y:z=1"]}', "set-params: must be a list of KEY=VALUE"),
    (json.dumps({"set-params": [f"p{i}=1" for i in range(51)]}), "set-params: must be"),
    ('["reason"]', "must be a JSON object, not list"),
    ('{"reason": "a", "reason": "b"}', "key 'reason' appears twice"),
    ('{"reason": "x"', "not JSON"),
    ('{"set-params": {"a": [[[[1]]]]}}', "nested deeper than 4 levels"),
    ("[" * 100000 + "]" * 100000, "bytes, more than the 16384 accepted"),
]


@pytest.mark.parametrize("text, message", BAD_PAYLOADS, ids=[m for _t, m in BAD_PAYLOADS])
def test_bad_payloads_are_refused_naming_the_key(text, message):
    with pytest.raises(InputError) as info:
        dispatch.parse_payload(text)
    assert message in info.value.message
    assert info.value.exit_code == EXIT_USAGE
    assert "dispatch-payload.schema.json" in info.value.hint


def test_rebuild_refuses_a_bad_payload_before_touching_anything(tmp_path):
    before = sorted(tmp_path.iterdir())
    proc = lockstep("rebuild", "--working-directory", "nowhere", "--dispatch-payload",
                    '{"reason": "new data", "force-all": "yes"}', cwd=tmp_path,
                    env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "out"),
                         "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")})
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert "::error title=lockstep rebuild%3A invalid input::dispatch payload: force-all: must be boolean" in proc.stdout
    assert "force\\-all" in (tmp_path / "summary").read_text()  # rendered inert, as every summary
    assert sorted(p for p in tmp_path.iterdir() if p.name not in ("out", "summary")) == before


def test_the_payload_reaches_rebuild_through_the_action_input(tmp_path):
    """INPUT_DISPATCH_PAYLOAD, as actions/rebuild maps it, is read (and refused here)."""
    proc = lockstep("rebuild", "--working-directory", "nowhere", cwd=tmp_path,
                    env={"INPUT_DISPATCH_PAYLOAD": '{"retrain": true}'})
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert "unknown key 'retrain'" in proc.stdout + proc.stderr
