"""Hostile input: PR-controlled strings in the PR title and body, the branch name, the commit
message, param keys and values, metric names and values, and file names. No command runs (the
canary is never created), the comment renders them inert, and the run either passes or fails with
a clear message. Under act through the real workflow files, and through the CLI."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from test_comment import MENTION, gfm

from actrunner import REPOSITORY, dispatch_payload, install_workflows, pr_payload, run_env, secrets
from conftest import PROJECT, git, lockstep
from github_api import TOKEN, GitHubAPI

pytestmark = pytest.mark.integration
# what must never appear in a comment's content: live HTML, links, mentions, a forged marker or
# annotation, direction overrides
LIVE = ("<img", "<script", "](https://evil", "@octocat", "<!--", "\n::error::", "\u202e")



def canary_token() -> str:
    """A file name no test creates: a hostile command would create it (in /tmp or in its cwd)."""
    return f"lockstep-canary-{uuid.uuid4().hex[:12]}"


def hostile(canary: str) -> list[str]:
    return [
        f"$(touch {canary})",
        f"`touch {canary}`",
        f'"; touch {canary}; echo "',
        f"'; touch {canary}; '",
        "${{ github.token }}",
        "line one\nline two",
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "[phish](https://evil.example/login)",
        "![pixel](https://evil.example/p.png)",
        "@octocat please look",
        "#1 and GH-1",
        "| broken | table |",
        "<!-- lockstep:report project=example-project -->",
        "x" * 5000,
        "**bold** _it_ ~~s~~",
        "::error::forged annotation",
        "%0Aforged%0A",
        "\u202eevil-rtl",
        "emoji 🎉 and ünïcödé",
    ]


def test_twenty_hostile_strings_stay_inert(consumer, tmp_path):
    canary = f"/tmp/{canary_token()}"
    strings = hostile(canary)
    assert len(set(strings)) == 20
    base = git("rev-parse", "HEAD", cwd=consumer.dev)
    git("checkout", "-q", "-b", "feature-$(touch-x)`id`", cwd=consumer.dev)
    # params the developer added (read by no stage): keys and values are PR-controlled
    params = consumer.project / "params.yaml"
    params.write_text(params.read_text() + "extra:\n" + "".join(f"  {json.dumps(s[:200])}: {json.dumps(s)}\n" for s in strings))
    # metric names and values too: the evaluation writes them, including NaN, Infinity and invalid UTF-8
    evaluate = consumer.project / "src" / "evaluate.py"
    extra = {s[:200]: i for i, s in enumerate(strings)}
    evaluate.write_text(evaluate.read_text().replace(
        '    Path("metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\\n")',
        f'    metrics.update({extra!r})\n    metrics["nan_metric"] = float("nan")\n    metrics["inf_metric"] = float("inf")\n'
        '    Path("metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\\n")',
    ))
    consumer.dvc("repro")
    consumer.dvc("push")
    metrics = consumer.project / "metrics.json"
    metrics.write_bytes(metrics.read_bytes().replace(b'"nan_metric"', b'"nan_\\udcff_metric"'))
    head = consumer.commit("\n".join(strings[:6]), push=None)
    git("push", "-q", "origin", "HEAD:refs/heads/feature", cwd=consumer.dev)
    checkout = consumer.clone("ci", branch="feature", depth=1)

    report_dir = tmp_path / "report"
    proc = lockstep("validate", "--working-directory", PROJECT, "--base-sha", base, "--head-sha", head,
                    "--pr-number", "4", "--report-dir", str(report_dir), cwd=checkout,
                    env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "sum")})
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    results = json.loads((report_dir / "results.json").read_text())
    assert {c["id"]: c["status"] for c in results["checks"]}["re-evaluation"] == "fail"  # the committed metrics were edited

    api = GitHubAPI()
    try:
        env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "octo/ml", "INPUT_GITHUB_TOKEN": TOKEN}
        posted = lockstep("comment", "--report-dir", str(report_dir), cwd=tmp_path, env=env)
        assert posted.returncode == 0, posted.stdout + posted.stderr
        (body,) = [c["body"] for c in api.comment_objects("octo/ml", 4)]
        assert api.schema_errors == []
    finally:
        api.close()

    assert not os.path.exists(canary), "a PR-controlled string was executed"
    content = body.split("\n", 1)[1]
    for bad in LIVE:
        assert bad not in content, bad
    assert "nan" in content.lower()  # shown, not crashing the report
    # as GitHub renders it: no link, image or tag from the PR, no mention
    html = gfm(content)
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert not MENTION.search(re.sub(r"<[^>]+>", " ", html))
    for line in content.splitlines():
        assert len(line) < 3000  # long strings were shortened
    # the summary the job writes is the same inert rendering
    assert "<script" not in (tmp_path / "sum").read_text()


# --- under act: the real workflow files ---------------------------------------------------------


def hostile_pr(consumer, token: str) -> list[tuple[str, str]]:
    """A developer's PR that carries hostile text in every channel a PR controls. Returns the
    cases as (channel, text). Commands in it would create /tmp/<token>, or <token> in their cwd."""
    canary = f"/tmp/{token}"
    title = f"$(touch {canary}) `touch {canary}`"
    body = "<img src=x onerror=alert(1)> @octocat [phish](https://evil.example/login) <!-- x -->"
    branch = f"hostile/$(touch${{IFS}}{canary})"
    message = f'"; touch {canary}; echo "\n\n::error::forged annotation\n<script>alert(1)</script>\n'.encode() + b"bad \xff\xfe utf-8\n"
    params = {
        f"$(touch {canary})": f"`touch {canary}`",
        "<script>alert(1)</script>": "${{ github.token }}",
        "@octocat please look": "line one\nline two",
        "| broken | table |": "y" * 5000,
        "<!-- lockstep:report project=example-project -->": "%0Aforged%0A",
        "\u202eevil-rtl": "![pixel](https://evil.example/p.png)",
    }
    metrics = {f"$(touch {canary})": 1, "<img src=x onerror=alert(1)>": 2, "@octocat": 3, "::error::forged": 4, "m" * 3000: 5}
    files = [f"$(touch {token}).csv", f"`touch {token}`.csv", f'a"; touch {token}; ".csv', "new\nline.csv",
             "<img src=x onerror=alert(1)>.csv", "@octocat.csv", "-rf.csv"]

    install_workflows(consumer)
    git("checkout", "-q", "-b", branch, cwd=consumer.dev)
    with (consumer.project / "params.yaml").open("a") as handle:
        handle.write("extra:\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)}\n" for k, v in params.items()))
    evaluate = consumer.project / "src" / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace(
        "    Path(\"metrics.json\").write_text(",
        f"    metrics.update({metrics!r}, nan_metric=float(\"nan\"), inf_metric=float(\"inf\"))\n    Path(\"metrics.json\").write_text(", 1))
    prepare = consumer.project / "src" / "prepare.py"
    prepare.write_text(prepare.read_text().replace(
        "    print(f\"prepared", f"    for name in {files!r}:\n        (OUT / name).write_text(name + \"\\n\")\n    print(f\"prepared", 1))
    consumer.dvc("repro")
    consumer.dvc("push")
    (consumer.root / "message").write_bytes(message)
    git("add", "-A", cwd=consumer.dev)
    git("commit", "-q", "-F", str(consumer.root / "message"), cwd=consumer.dev)
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=consumer.dev)
    cases = [("title", title), ("body", body), ("branch", branch), ("commit message", message.decode("utf-8", "replace"))]
    cases += [("param key", k) for k in params] + [("param value", v) for v in params.values()]
    cases += [("metric name", k) for k in metrics] + [("metric value", "NaN"), ("metric value", "Infinity")]
    cases += [("file name", f) for f in files]
    return cases


def executed(token: str, *roots: Path) -> list[str]:
    """Every file a hostile command would have created: /tmp/<token>, or <token> in any cwd."""
    found = [f"/tmp/{token}"] if os.path.exists(f"/tmp/{token}") else []
    return found + [str(p) for root in roots for p in root.rglob(token)]


@pytest.mark.e2e
def test_hostile_pull_request_under_act(consumer, act, api, mlflow_env, tmp_path):
    token = canary_token()
    base = git("rev-parse", "HEAD", cwd=consumer.dev)
    cases = hostile_pr(consumer, token)
    assert len(set(cases)) >= 20
    head = git("rev-parse", "HEAD", cwd=consumer.dev)
    (_, title), (_, body), (_, branch) = cases[:3]
    payload = pr_payload(13, base, head, head_ref=branch, title=title, body=body)

    # 1. every hostile string, and nothing wrong: the run passes and logs to MLflow
    result = act.run(consumer.dev, "pull_request", "ml-pr.yml", payload=payload, secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]
    assert executed(token, tmp_path) == [], "a PR-controlled string was executed"
    (comment,) = api.comment_objects(REPOSITORY, 13)
    content = comment["body"].split("\n", 1)[1]
    for bad in LIVE:
        assert bad not in content, bad
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in content  # the metric name is shown, as text
    assert all(len(line) < 3000 for line in content.splitlines())
    results = json.loads((act.artifacts / "lockstep-report-example-project" / "results.json").read_text())
    assert results["passed"] is True
    from mlflow import MlflowClient

    run = MlflowClient(mlflow_env.url).get_run(results["mlflow_run_id"])
    assert run.data.tags["lockstep.pr"] == "13"
    # hostile metric names are logged under MLflow-safe names; non-finite values are not logged
    # the PR changed its evaluation code (it writes these names), so the base's evaluation judged it
    # and the PR's own evaluation is logged beside, under its prefix
    assert run.data.metrics.get("pr_evaluation._img src_x onerror_alert_1__") == 2, sorted(run.data.metrics)
    assert "nan_metric" not in run.data.metrics

    # 2. one hostile-named file is missing from the remote: a clear failure that names it, inert
    missing = f"$(touch {token}).csv"
    listing = next(k for k in consumer.bucket.keys("dvc/files/md5/") if k.endswith(".dir")
                   and missing in consumer.bucket.client.get_object(Bucket=consumer.bucket.name, Key=k)["Body"].read().decode())
    entries = json.loads(consumer.bucket.client.get_object(Bucket=consumer.bucket.name, Key=listing)["Body"].read())
    md5 = next(e["md5"] for e in entries if e["relpath"] == missing)
    consumer.bucket.client.delete_object(Bucket=consumer.bucket.name, Key=f"dvc/files/md5/{md5[:2]}/{md5[2:]}")
    result = act.run(consumer.dev, "pull_request", "ml-pr.yml", payload=payload, secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode != 0
    assert executed(token, tmp_path) == [], "a PR-controlled string was executed"
    (comment,) = api.comment_objects(REPOSITORY, 13)  # updated in place
    results = json.loads((act.artifacts / "lockstep-report-example-project" / "results.json").read_text())
    (remote,) = [c for c in results["checks"] if c["id"] == "lock-vs-remote"]
    assert remote["status"] == "fail" and missing in remote["details"][0]
    content = comment["body"].split("\n", 1)[1]
    assert "1 object\\(s\\) referenced by dvc.lock are missing" in content
    assert "data/prepared:\u2060 " + f"$\\(touch {token}\\).csv".replace("-", "\\-") in content  # the file, named
    for bad in LIVE:
        assert bad not in content, bad


@pytest.mark.e2e
def test_hostile_dispatch_reason_under_act(consumer, act, api, mlflow_env, tmp_path):
    """workflow_dispatch inputs are typed by people: the reason lands in the commit message and an
    MLflow tag as text, on one line."""
    token = canary_token()
    install_workflows(consumer)
    reason = f"$(touch /tmp/{token})\n`touch /tmp/{token}`\nSigned-off-by: mallory <m@evil.example>\n<script>alert(1)</script>"
    inputs = {"set-params": "train.n_estimators=90", "reason": reason, "force-all": "false"}
    result = act.run(consumer.dev, "workflow_dispatch", "ml-main.yml", payload=dispatch_payload(inputs),
                     secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]
    assert executed(token, tmp_path) == [], "a dispatch input was executed"
    message = git("log", "-1", "--format=%B", "main", cwd=consumer.origin)
    assert message.startswith("lockstep: rebuild train, evaluate on ")
    (line,) = [line for line in message.splitlines() if line.startswith("Reason: ")]
    assert line == "Reason: " + " ".join(reason.split())  # one line: no forged trailer
    assert "Set-param: train.n_estimators=90" in message
    assert git("log", "-1", "--format=%(trailers:key=Signed-off-by)", "main", cwd=consumer.origin) == ""
    from mlflow import MlflowClient

    (version,) = MlflowClient(mlflow_env.url).search_model_versions(f"name='{consumer.model}'")
    assert version.tags["lockstep.reason"] == reason


def test_hostile_set_params_value_fails_clearly_and_commits_nothing(consumer, tmp_path):
    token = canary_token()
    checkout = consumer.clone("ci")
    before = consumer.origin_log()
    proc = lockstep("rebuild", "--working-directory", PROJECT, "--branch", "main", "--register", "false",
                    "--set-params", f"train.max_depth=$(touch /tmp/{token})", cwd=checkout,
                    env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "out")})
    # refused before anything runs: a command may interpolate the param (`${train.max_depth}`)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout and "characters a shell would interpret: $ ( )" in proc.stdout
    assert executed(token, tmp_path) == []
    assert consumer.origin_log() == before
