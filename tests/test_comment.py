"""PR comments through the GitHub REST API, against the local GitHub API test server."""

from __future__ import annotations

import json
import re

import pytest

from lockstep import comment, report as reportmod
from lockstep.errors import EXIT_ARTIFACT, ArtifactError, GitHubError
from lockstep.github import GitHub

from conftest import lockstep
from github_api import TOKEN, GitHubAPI, Request

REPO = "octo/ml"


@pytest.fixture
def waits():
    return []


@pytest.fixture
def gh(api, waits):
    return GitHub(TOKEN, api.url, sleep=waits.append)


def sample(project="example-project", **overrides) -> reportmod.Report:
    rep = reportmod.Report(project=project, pr_number="5", head_sha="a" * 40, base_sha="b" * 40, lockstep_version="0.1.0")
    rep.add(reportmod.Check("lock-vs-code", "dvc.lock vs code", "pass", "all stages match"))
    rep.metrics.append(reportmod.MetricRow("accuracy", 0.95, 0.96, 0.01, 0.0105, "higher", "pass"))
    for key, value in overrides.items():
        setattr(rep, key, value)
    return rep


def test_what_asks_for_review_is_above_the_fold_on_a_passing_pr():
    rep = sample()
    rep.add(reportmod.Check("trusted-evaluation", "Trusted evaluation", "warn",
                            "needs a maintainer's review: this PR changes its evaluation"))
    body = reportmod.render(rep)
    top = body.split("| metric |")[0]  # before the metric table, outside the collapsed checks
    assert rep.passed and "**Trusted evaluation**: needs a maintainer" in top
    assert "⚠️" in top and "**dvc.lock vs code**" not in top  # passes stay in the collapsed list


def bodies(api, issue=5):
    return [c["body"] for c in api.comment_objects(REPO, issue)]


def test_schema_validation_is_active():
    """With GitHub's schemas beside the checkout, the test server checks every request: a body
    that breaks the create-comment schema is recorded (and the `api` fixture would fail on it)."""
    server = GitHubAPI()
    try:
        if not server.ops:
            pytest.skip("../shared/github-api is not beside this checkout: responses are not schema-checked")
        assert {op.id for op in server.ops} >= {"issues/create-comment", "issues/update-comment", "issues/list-comments"}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        server.dispatch(Request("POST", f"/repos/{REPO}/issues/5/comments", {}, {"body": "fine"}, headers))
        assert server.schema_errors == []
        server.dispatch(Request("POST", f"/repos/{REPO}/issues/5/comments", {}, {"text": "no body"}, headers))
        assert len(server.schema_errors) == 1 and "issues/create-comment request" in server.schema_errors[0]
    finally:
        server.close()


def test_create_then_update_in_place(api, gh):
    first = comment.post(gh, REPO, 5, sample())
    rep = sample()
    rep.metrics[0].pr = 0.97
    second = comment.post(gh, REPO, 5, rep)
    assert first.created and not second.created and first.comment_id == second.comment_id
    assert len(bodies(api)) == 1 and "0.97" in bodies(api)[0]
    assert [r.method for r in api.requests] == ["GET", "POST", "GET", "PATCH"]


def test_two_projects_get_two_comments(api, gh):
    comment.post(gh, REPO, 5, sample("project-a"))
    comment.post(gh, REPO, 5, sample("project-b"))
    comment.post(gh, REPO, 5, sample("project-a"))
    found = bodies(api)
    assert len(found) == 2
    assert found[0].startswith("<!-- lockstep:report project=project-a -->")
    assert found[1].startswith("<!-- lockstep:report project=project-b -->")


def test_more_than_100_comments_are_paginated(api, gh):
    api.seed_comments(REPO, 5, 150)
    comment.post(gh, REPO, 5, sample())
    api.seed_comments(REPO, 5, 60)  # ours is now comment 151 of 211: on page 2
    posted = comment.post(gh, REPO, 5, sample())
    assert not posted.created
    assert sum("lockstep:report" in b for b in bodies(api)) == 1
    pages = [r.query.get("page", ["1"])[0] for r in api.requests if r.method == "GET"]
    assert pages == ["1", "2", "1", "2"]


def test_502_then_success_is_retried(api, gh, waits):
    api.fault("POST", r"/comments$", 502, message="Bad Gateway")
    posted = comment.post(gh, REPO, 5, sample())
    assert posted.created and len(bodies(api)) == 1
    assert len(waits) == 1 and 0 < waits[0] <= 1


def test_secondary_rate_limit_honours_retry_after(api, gh, waits):
    api.fault("GET", r"/comments$", 403, {"Retry-After": "7"}, "You have exceeded a secondary rate limit.")
    comment.post(gh, REPO, 5, sample())
    assert waits == [7.0] and len(bodies(api)) == 1


def test_rate_limit_reset_header(api, gh, waits):
    import time

    api.fault("GET", r"/comments$", 429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 20)})
    comment.post(gh, REPO, 5, sample())
    assert len(waits) == 1 and 15 < waits[0] <= 22


def test_permission_error_says_which_permission(api, gh):
    api.fault("POST", r"/comments$", 403, message="Resource not accessible by integration")
    with pytest.raises(GitHubError) as caught:
        comment.post(gh, REPO, 5, sample())
    assert "403 Resource not accessible by integration" in caught.value.message
    assert "pull-requests: write" in caught.value.hint
    assert bodies(api) == []


def test_bad_token_is_401(api):
    with pytest.raises(GitHubError, match="401 Bad credentials"):
        comment.post(GitHub("wrong", api.url, sleep=lambda s: None), REPO, 5, sample())


def test_oversized_report_is_truncated_under_the_limit(api, gh):
    rep = sample()
    rep.add(reportmod.Check("gates", "Gates", "fail", "many failures", [f"metric_{i}: {'x' * 250}" for i in range(2000)]))
    for i in range(300):
        rep.metrics.append(reportmod.MetricRow(f"metric_{i}_" + "m" * 50, 1.0, 2.0, 1.0, 1.0, "higher", "fail", ["r" * 190]))
    comment.post(gh, REPO, 5, rep, summary_url="https://github.example/octo/ml/actions/runs/1")
    (body,) = bodies(api)
    assert len(body) <= reportmod.COMMENT_LIMIT
    assert body.startswith("<!-- lockstep:report project=example-project -->\n## ❌ lockstep")
    assert "| metric | base | PR |" in body


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "@octocat",
    "[click](https://evil.example)",
    "![pixel](https://evil.example/p.png)",
    "line\nbreak | pipe",
    "<!-- lockstep:report project=other -->",
    "`code` **bold** #123",
    "<details open>",
    "$(touch /tmp/pwned)",
    "\x1b[31mred",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_render_inert(text):
    rep = sample(project=text, pr_number="5")
    rep.metrics.append(reportmod.MetricRow(text, text, text, None, None, None, "fail", [text]))
    rep.params.append((text, text, text + "2"))
    rep.add(reportmod.Check("x", "X", "fail", text, [text]))
    body = reportmod.render(rep)
    content = body.split("\n", 1)[1]  # after our own marker
    for bad in ("<img", "@octocat", "](https", "<!--", "<details open", "\x1b", "](http"):
        assert bad not in content
    assert "lockstep:report" not in content
    for line in body.splitlines():
        if line.startswith("| ") and "metric" not in line and "---" not in line:
            # GFM reads `\|` as a literal pipe: only unescaped pipes delimit cells
            assert len(re.findall(r"(?<!\\)\|", line)) in (4, 6), line  # 3 or 5 cells, none split


def artifact(tmp_path, rep, extra=None):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "results.json").write_text(rep.to_json())
    (folder / "report.md").write_text(reportmod.render(rep))
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)
    return folder


def test_artifact_with_unexpected_file_is_rejected(tmp_path):
    with pytest.raises(ArtifactError, match="unexpected entry"):
        comment.load_artifact(artifact(tmp_path, sample(), {"evil.sh": "#!/bin/sh"}))


def test_artifact_with_link_is_rejected(tmp_path):
    folder = artifact(tmp_path, sample())
    (folder / "report.md").unlink()
    (folder / "report.md").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match="links are not allowed"):
        comment.load_artifact(folder)


def test_oversized_artifact_is_rejected(tmp_path):
    folder = artifact(tmp_path, sample())
    (folder / "report.md").write_text("x" * 2_100_000)
    with pytest.raises(ArtifactError, match="report.md is 2100000 bytes, over its 2000000-byte cap"):
        comment.load_artifact(folder)


def test_tampered_verdict_is_rejected(tmp_path):
    folder = artifact(tmp_path, sample())
    data = json.loads((folder / "results.json").read_text())
    data["checks"][0]["status"] = "fail"  # says failed, verdict says passed
    (folder / "results.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="verdict does not match"):
        comment.load_artifact(folder)


def test_fork_path_posts_rerendered_comment_and_checks_pr(tmp_path, api):
    rep = sample()
    rep.checks[0].summary = "<script>alert(1)</script>"
    folder = artifact(tmp_path, rep)
    (folder / "report.md").write_text("<script>posted verbatim?</script>")  # never posted as is
    api.add_pull(REPO, 5, "a" * 40, head_label="forker:feature")
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": TOKEN}
    proc = lockstep("comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "a" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (body,) = bodies(api)
    assert "posted verbatim" not in body and "<script>" not in body and "&lt;script&gt;" in body

    # the artifact claims another PR than the one whose head it names: rejected, nothing posted
    api.add_pull(REPO, 6, "c" * 40)
    proc = lockstep("comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "c" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == EXIT_ARTIFACT
    assert "the artifact says PR #5 but the head cccccccccccc belongs to PR #6" in proc.stdout + proc.stderr
    assert api.comment_objects(REPO, 6) == []


def test_fork_pr_found_by_head_label_when_commit_lookup_is_empty(api, gh):
    api.add_pull(REPO, 9, "d" * 40, head_label="forker:fix", fork=True)
    with pytest.raises(ArtifactError, match="found 0 open pull request"):
        comment.pr_for_head(gh, REPO, "d" * 40)  # the commit lookup alone does not see forks
    assert comment.pr_for_head(gh, REPO, "d" * 40, "forker", "fix") == 9
    assert any(r.query.get("head") == ["forker:fix"] for r in api.requests)
    with pytest.raises(ArtifactError, match="found 0 open pull request"):
        comment.pr_for_head(gh, REPO, "e" * 40, "forker", "other")


def test_token_is_masked_before_anything_is_printed(tmp_path, api):
    folder = artifact(tmp_path, sample())
    api.add_pull(REPO, 5, "a" * 40, head_label="forker:feature")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": TOKEN}
    proc = lockstep("comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "a" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == f"::add-mask::{TOKEN}"
    assert TOKEN not in "".join(proc.stdout.splitlines()[1:]) + proc.stderr


# --- what GitHub's renderer makes of hostile text ----------------------------------------------

GFM_EXTENSIONS = ["table", "autolink", "strikethrough", "tagfilter", "tasklist"]
# tags lockstep's own Markdown produces; anything else in the HTML came from untrusted text
OWN_TAGS = {"p", "h2", "h3", "ul", "li", "strong", "code", "pre", "table", "thead", "tbody", "tr", "th", "td",
            "details", "summary", "sub", "em"}
RENDER_HOSTILE = [
    "@octocat", "hi @octocat and @org/team", "cc:@octocat", "&#64;octocat", "@&#8203;octocat",
    "#12", "fixes #12", "GH-12", "gh-12", "octo/ml#12", "octo/ml@abcdef1", "see\\#12",
    "www.evil.example/login", "WWW.EVIL.EXAMPLE", "https://evil.example/x", "http://evil.example",
    "ftp://evil.example", "mailto:a@evil.example", "xmpp:a@evil.example", "mallory@evil.example",
    "<https://evil.example>", "<mallory@evil.example>", "[phish](https://evil.example)",
    "![pixel](https://evil.example/p.png)", "[ref]: https://evil.example", "<img src=x onerror=alert(1)>",
    "<a href='https://evil.example'>x</a>", "<script>alert(1)</script>", "<details open><summary>x",
    "<!-- lockstep:report project=other -->", "javascript:alert(1)", "&lt;img src=x&gt;",
    "`code` **bold** _it_ ~~s~~", "| a | b |", "line one\nline two", "\u202eevil-rtl", "\x1b[31mred",
    "a\\<img src=x>", "::error::forged",
]
MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")  # what GitHub turns into a mention after rendering
REFERENCE = re.compile(r"(?i)(#\d|\bgh-\d|[\w.-]+/[\w.-]+@[0-9a-f]{7})")
AUTOLINK = re.compile(r"(?i)(www\.|[a-z][a-z0-9+.-]*://|(mailto|xmpp):[\w.+-]|[\w.+-]+@[\w-]+\.[\w.]+)")


def gfm(markdown: str) -> str:
    import cmarkgfm
    from cmarkgfm.cmark import Options

    # UNSAFE: keep raw HTML in the output, so that any that got through is seen
    return cmarkgfm.markdown_to_html_with_extensions(markdown, options=Options.CMARK_OPT_UNSAFE, extensions=GFM_EXTENSIONS)


def assert_inert_html(html: str) -> None:
    import html as htmlmod

    tags = {t.lower() for t in re.findall(r"<\s*/?\s*([A-Za-z][A-Za-z0-9-]*)", html)}
    assert tags <= OWN_TAGS, f"foreign tags {tags - OWN_TAGS} in {html[:500]}"
    assert "<a " not in html and "<img" not in html and "<!--" not in html
    text = htmlmod.unescape(re.sub(r"<[^>]+>", " ", html))
    assert not MENTION.search(text), MENTION.search(text)
    assert not REFERENCE.search(text), REFERENCE.search(text)
    assert not AUTOLINK.search(text), AUTOLINK.search(text)


def test_enough_hostile_strings_for_the_renderer():
    assert len(set(RENDER_HOSTILE)) >= 30


@pytest.mark.parametrize("text", RENDER_HOSTILE)
def test_hostile_strings_stay_inert_in_githubs_renderer(text):
    rep = sample(project=text, pr_number="")  # "PR #5", lockstep's own reference, is not under test
    rep.metrics.append(reportmod.MetricRow(text, text, text, None, None, None, "fail", [text]))
    rep.params.append((text, text, text + "2"))
    rep.add(reportmod.Check("x", text, "fail", text, [text]))
    body = reportmod.render(rep)
    assert body.startswith(reportmod.marker(text) + "\n")
    assert_inert_html(gfm(body.split("\n", 1)[1]))  # after lockstep's own marker
    assert_inert_html(gfm(reportmod.inert(text)))
    # the text still reads the same once the invisible joiners are removed
    shown = re.sub(r"<[^>]+>", "", gfm(reportmod.inert(text))).replace(reportmod.JOINER, "")
    import html as htmlmod

    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    assert htmlmod.unescape(shown).strip() == printable.strip()


def test_the_old_escaping_rendered_back_into_mentions_and_links():
    """Why the joiner: `&#64;` and `\\#` are undone by the renderer, which GitHub then links."""
    html = gfm("&#64;octocat \\#12 www.evil.example mallory&#64;evil.example")
    with pytest.raises(AssertionError):
        assert_inert_html(html)


# --- the fork path renders only lockstep's vocabulary --------------------------------------------


def tampered(tmp_path, change, rep=None):
    folder = artifact(tmp_path, rep or sample())
    data = json.loads((folder / "results.json").read_text())
    change(data)
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def test_artifact_titles_and_links_are_lockstep_own(tmp_path):
    rep = sample(pr_number="", mlflow_run_id="0123abcd" * 4, mlflow_run_url="https://evil.example/phish",
                 workflow_run_url="https://evil.example/octo/ml/actions/runs/1")
    rep.checks[0].title = "![pixel](https://evil.example/p.png) @octocat"
    rep.add(reportmod.Check("gates", "<img src=x>", "fail", "1 gate failed"))
    loaded = comment.load_artifact(artifact(tmp_path, rep), server_url="https://github.com", repository=REPO)
    body = reportmod.render(loaded)
    assert "dvc.lock vs code" in body and "**Gates**" in body and "failed validation (gates)" in body
    assert "evil.example" not in body and "<img" not in body and "pixel" not in body
    assert "MLflow run `0123abcd" in body and "](" not in body.split("<details>")[0]
    assert_inert_html(gfm(body.split("\n", 1)[1]))

    # a workflow run URL of this repository on this server is kept, as a link
    rep = sample(workflow_run_url="https://github.com/octo/ml/actions/runs/123456")
    (tmp_path / "ok").mkdir()
    loaded = comment.load_artifact(artifact(tmp_path / "ok", rep), server_url="https://github.com", repository=REPO)
    assert "[workflow run](https://github.com/octo/ml/actions/runs/123456)" in reportmod.render(loaded)
    for url in ("https://github.com/other/ml/actions/runs/1", "https://github.com/octo/ml/actions/runs/1)](https://evil",
                "https://github.com.evil.example/octo/ml/actions/runs/1", "javascript:alert(1)//https://github.com/octo/ml/actions/runs/1"):
        folder = tmp_path / f"u{abs(hash(url))}"
        folder.mkdir()
        loaded = comment.load_artifact(artifact(folder, sample(workflow_run_url=url)), server_url="https://github.com", repository=REPO)
        assert loaded.workflow_run_url == "" and "workflow run" not in reportmod.render(loaded), url


WRONG = {
    "not an object": lambda d: d.clear() or d.update({"__list__": True}),
    "checks not a list": lambda d: d.update(checks={"a": 1}),
    "check summary a list": lambda d: d["checks"][0].update(summary=["x"]),
    "check title an object": lambda d: d["checks"][0].update(title={"x": 1}),
    "check details strings": lambda d: d["checks"][0].update(details=[{"x": 1}]),
    "status outside the set": lambda d: d["checks"][0].update(status="<img src=x>"),
    "metric value an object": lambda d: d["metrics"][0].update(pr={"x": 1}),
    "metric delta a string": lambda d: d["metrics"][0].update(absolute="12"),
    "gate reasons a string": lambda d: d["metrics"][0].update(gate_reasons="x"),
    "direction outside the set": lambda d: d["metrics"][0].update(direction="up"),
    "passed a string": lambda d: d.update(passed="yes"),
    "project a list": lambda d: d.update(project=["x"]),
    "pr number not digits": lambda d: d.update(pr_number="5 @octocat"),
    "head sha not hex": lambda d: d.update(head_sha="--upload-pack=x"),
    "run id with markup": lambda d: d.update(mlflow_run_id="`x` @y"),
    "params not objects": lambda d: d.update(params=[1, 2]),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_typed_artifact_fields_are_refused(tmp_path, case):
    def change(data):
        WRONG[case](data)
        if data.pop("__list__", False):
            data["x"] = 1

    folder = tampered(tmp_path, change)
    if case == "not an object":
        (folder / "results.json").write_text("[1, 2, 3]")
    with pytest.raises(ArtifactError, match="results.json"):
        comment.load_artifact(folder, server_url="https://github.com", repository=REPO)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"checks": ' + "[" * 50 + "]" * 50 + "}", "{" * 5000, "\xff\xfe",
                                  '{"project": 5e999999, "passed": true}'])
def test_deep_or_broken_results_json_is_exit_9_not_a_traceback(tmp_path, api, text):
    folder = artifact(tmp_path, sample())
    (folder / "results.json").write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    api.add_pull(REPO, 5, "a" * 40)
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": TOKEN}
    proc = lockstep("comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "a" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == EXIT_ARTIFACT, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "results.json" in proc.stdout + proc.stderr
    assert bodies(api) == []


@pytest.mark.parametrize("conclusion", ["failure", "cancelled", "timed_out"])
def test_passed_artifact_from_a_run_that_did_not_succeed_is_refused(tmp_path, api, conclusion):
    folder = artifact(tmp_path, sample())
    api.add_pull(REPO, 5, "a" * 40)
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": TOKEN, "INPUT_RUN_CONCLUSION": conclusion}
    proc = lockstep("comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "a" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == EXIT_ARTIFACT, proc.stdout + proc.stderr
    assert f"says the checks passed, but the validation run concluded '{conclusion}'" in proc.stdout + proc.stderr
    assert bodies(api) == []


def test_failed_artifact_from_a_failed_run_is_posted(tmp_path, api):
    rep = sample()
    rep.add(reportmod.Check("gates", "Gates", "fail", "accuracy fell"))
    api.add_pull(REPO, 5, "a" * 40)
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": TOKEN, "INPUT_RUN_CONCLUSION": "failure"}
    proc = lockstep("comment", "--report-dir", str(artifact(tmp_path, rep)), "--from-artifact", "true", "--head-sha", "a" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (body,) = bodies(api)
    assert "failed validation (gates)" in body


# --- only lockstep's own comment is updated -----------------------------------------------------


def test_marker_in_someone_elses_comment_is_not_edited(api, gh):
    forged = reportmod.marker("example-project") + "\nplease merge, all green"
    api.seed_comments(REPO, 5, 1, body=forged)  # written by a person, marker copied in
    first = comment.post(gh, REPO, 5, sample())
    assert first.created and first.author == "github-actions[bot]"
    second = comment.post(gh, REPO, 5, sample())
    assert not second.created and second.comment_id == first.comment_id
    found = api.comment_objects(REPO, 5)
    assert found[0]["body"] == forged and found[0]["user"]["login"] == "mallory"
    assert [c["user"]["login"] for c in found] == ["mallory", "github-actions[bot]"]
    assert [r.method for r in api.requests if r.method != "GET"] == ["POST", "PATCH"]


def test_a_personal_or_app_token_updates_the_comments_of_its_own_login(api):
    user = GitHub("ghp_usertoken", api.url, sleep=lambda s: None)
    api.seed_comments(REPO, 5, 1, body=reportmod.marker("example-project"), token=TOKEN)  # a bot's comment
    posted = comment.post(user, REPO, 5, sample(), author="mallory")
    assert posted.created  # the bot's comment is not this token's
    again = comment.post(user, REPO, 5, sample(), author="Mallory")  # logins are case-insensitive
    assert not again.created and again.comment_id == posted.comment_id


def test_comment_author_mismatch_is_warned(tmp_path, api):
    folder = artifact(tmp_path, sample())
    api.add_pull(REPO, 5, "a" * 40)
    env = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "INPUT_GITHUB_TOKEN": "ghp_usertoken"}
    proc = lockstep("comment", "--report-dir", str(folder), "--from-artifact", "true", "--head-sha", "a" * 40, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Set `comment-author: mallory`" in proc.stdout + proc.stderr
