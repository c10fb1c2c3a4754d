"""Hostile input end to end through the CLI: PR-controlled strings in the branch name, the commit
message, params, metric names and values. No command runs (the canary is never created), the
comment renders them inert, and the run either passes or fails with a clear message."""

from __future__ import annotations

import json

import pytest

from conftest import PROJECT, git, lockstep
from github_api import TOKEN, GitHubAPI

pytestmark = pytest.mark.integration

CANARY = "/tmp/lockstep-canary-{}"


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
    canary = CANARY.format(tmp_path.name)
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

    import os

    assert not os.path.exists(canary), "a PR-controlled string was executed"
    content = body.split("\n", 1)[1]
    for bad in ("<img", "<script", "](https://evil", "@octocat", "<!--", "\n::error::", "\u202e"):
        assert bad not in content, bad
    assert "nan" in content.lower()  # shown, not crashing the report
    for line in content.splitlines():
        assert len(line) < 3000  # long strings were shortened
    # the summary the job writes is the same inert rendering
    assert "<script" not in (tmp_path / "sum").read_text()
