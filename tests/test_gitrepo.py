"""git: a push the server refuses is told from a race at once; user values never become options;
the push token reaches git only for the push, as an HTTP header, never the git config."""

from __future__ import annotations

import base64
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lockstep import gitrepo
from lockstep.errors import GitError

from conftest import ROOT, git


@pytest.fixture
def origin(tmp_path):
    """A bare origin with one commit on main, and a clone of it."""
    bare = tmp_path / "origin.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("clone", "-q", str(bare), str(seed), cwd=tmp_path)
    (seed / "dvc.lock").write_text("schema: '2.0'\n")
    git("add", "dvc.lock", cwd=seed)
    git("commit", "-q", "-m", "first", cwd=seed)
    git("push", "-q", "origin", "HEAD:main", cwd=seed)
    work = tmp_path / "work"
    git("clone", "-q", str(bare), str(work), cwd=tmp_path)
    return bare, seed, work


def push(work: Path, sleeps: list, **kwargs) -> gitrepo.PushResult:
    (work / "dvc.lock").write_text(f"schema: '2.0'\n# {uuid.uuid4().hex}\n")
    return gitrepo.commit_and_push(work, ["dvc.lock"], message="lockstep: rebuild", author_name="bot",
                                   author_email="bot@example.com", branch="main", sleep=sleeps.append, **kwargs)


def test_a_declining_pre_receive_hook_is_a_refusal_at_the_first_attempt(origin):
    bare, _seed, work = origin
    calls = bare / "hook-calls"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho called >> '{calls}'\necho 'protected branch: pushes need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = git("rev-parse", "main", cwd=bare)
    sleeps: list = []
    with pytest.raises(GitError) as caught:
        push(work, sleeps)
    assert "the server refused the push to origin main" in caught.value.message
    assert "pre-receive hook declined" in caught.value.message
    assert "PUSH_TOKEN secret" in caught.value.hint and "Nothing was pushed" in caught.value.hint
    assert "PUSH_TOKEN:" in (ROOT / ".github" / "workflows" / "main-rebuild.yml").read_text()  # the secret it names exists
    assert calls.read_text().count("called") == 1 and sleeps == []  # no rebase-and-retry rounds
    assert git("rev-parse", "main", cwd=bare) == before


def test_a_race_is_still_rebased_and_retried(origin):
    bare, seed, work = origin
    (seed / "README").write_text("moved\n")
    git("add", "README", cwd=seed)
    git("commit", "-q", "-m", "someone else", cwd=seed)
    git("push", "-q", "origin", "HEAD:main", cwd=seed)
    sleeps: list = []
    result = push(work, sleeps)
    assert result.attempts == 2 and len(sleeps) == 1
    assert git("log", "-1", "--format=%s", "main", cwd=bare) == "lockstep: rebuild"


@pytest.mark.parametrize(("text", "outcome"), [
    ("!\tHEAD:refs/heads/main\t[rejected] (fetch first)", "race"),
    ("!\tHEAD:refs/heads/main\t[rejected] (non-fast-forward)", "race"),
    ("!\tHEAD:refs/heads/main\t[remote rejected] (protected branch hook declined)", "refused"),
    ("remote: Permission to octo/ml.git denied to github-actions[bot].\n"
     "fatal: unable to access 'https://github.com/octo/ml/': The requested URL returned error: 403", "refused"),
    ("remote: error: GH013: Repository rule violations found for refs/heads/main.\n"
     "! [remote rejected] HEAD -> main (push declined due to repository rule violations)", "refused"),
    ("fatal: unable to access 'https://github.com/octo/ml/': Could not resolve host: github.com", "failed"),
])
def test_push_outcomes(text, outcome):
    assert gitrepo.push_outcome(text) == outcome


class _Recorder(BaseHTTPRequestHandler):
    """A git HTTP server that refuses everything (403) and records the Authorization headers."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization") or "")
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_the_push_token_is_a_header_of_the_push_only_and_a_403_is_a_refusal(origin, monkeypatch):
    _bare, _seed, work = origin
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    _Recorder.seen = []
    try:
        git("remote", "set-url", "origin", f"{url}/octo/ml.git", cwd=work)
        monkeypatch.setenv("GITHUB_SERVER_URL", url)
        monkeypatch.setenv(gitrepo.PUSH_TOKEN_ENV, "ghs_pushtoken")
        monkeypatch.setattr(gitrepo, "_push_token", "")
        assert gitrepo.take_push_token() == "ghs_pushtoken"
        assert gitrepo.PUSH_TOKEN_ENV not in __import__("os").environ  # no child process inherits it
        sleeps: list = []
        with pytest.raises(GitError) as caught:
            push(work, sleeps)
    finally:
        server.shutdown()
        server.server_close()
    expected = "basic " + base64.b64encode(b"x-access-token:ghs_pushtoken").decode()
    assert expected in _Recorder.seen
    assert "403" in caught.value.message and "PUSH_TOKEN" in caught.value.hint and sleeps == []
    config = (work / ".git" / "config").read_text()
    assert "ghs_pushtoken" not in config and base64.b64encode(b"x-access-token:ghs_pushtoken").decode() not in config
    assert "extraheader" not in git("config", "--list", cwd=work)


def test_auth_env_is_empty_without_a_token_and_keeps_other_git_config_env(monkeypatch):
    monkeypatch.setattr(gitrepo, "_push_token", "")
    assert gitrepo.auth_env() == {}
    monkeypatch.setattr(gitrepo, "_push_token", "tok")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.delenv("GITHUB_SERVER_URL", raising=False)
    assert gitrepo.auth_env() == {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_2": "http.https://github.com/.extraheader",
        "GIT_CONFIG_VALUE_2": "AUTHORIZATION: basic " + base64.b64encode(b"x-access-token:tok").decode(),
    }


def test_revisions_never_become_options(origin, tmp_path):
    _bare, _seed, work = origin
    canary = tmp_path / f"canary-{uuid.uuid4().hex[:8]}"
    evil = f"--upload-pack=touch {canary}"
    with pytest.raises(GitError):
        gitrepo.ensure_commit(work, evil)
    assert gitrepo.show(work, f"--output={canary}", "dvc.lock") is None
    with pytest.raises(GitError):
        gitrepo.changed_files(work, f"--output={canary}", "HEAD")
    assert not gitrepo.has_commit(work, f"--output={canary}")
    assert list(tmp_path.glob(f"{canary.name}*")) == [] and list(work.glob(f"*{canary.name}*")) == []


def test_nothing_to_commit_pushes_nothing(tmp_path):
    repo = tmp_path / "repo"
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    git("add", "dvc.lock", cwd=repo)
    git("commit", "-q", "-m", "lock", cwd=repo)
    result = gitrepo.commit_and_push(repo, ["dvc.lock"], message="lock", author_name="bot", author_email="bot@example.com",
                                     branch="main")
    assert result.sha is None and result.attempts == 0


def test_a_replace_ref_does_not_change_what_a_commit_holds(tmp_path):
    # `git replace` written into a checkout (by a pull request's code) would make the base's
    # metrics file read as another blob: lockstep's git ignores replacements
    repo = tmp_path / "repo"
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    (repo / "metrics.json").write_text('{"accuracy": 0.95}\n')
    git("add", "metrics.json", cwd=repo)
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "base", cwd=repo)
    base = git("rev-parse", "HEAD", cwd=repo)
    blob = git("rev-parse", "HEAD:metrics.json", cwd=repo)
    (tmp_path / "fake.json").write_text('{"accuracy": 0.10}\n')
    fake = git("hash-object", "-w", str(tmp_path / "fake.json"), cwd=repo)
    git("replace", blob, fake, cwd=repo)
    assert "0.10" in git("show", f"{base}:metrics.json", cwd=repo)  # plain git follows the replacement
    assert gitrepo.show(repo, base, "metrics.json") == '{"accuracy": 0.95}\n'
