"""git operations on real repositories: what a refused push says."""

from __future__ import annotations

import pytest

from lockstep import gitrepo
from lockstep.errors import EXIT_GIT, GitError

from conftest import ROOT, git


def test_a_refused_push_names_the_push_token_secret_the_workflow_declares(tmp_path):
    repo = tmp_path / "repo"
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    git("remote", "add", "origin", str(tmp_path / "missing.git"), cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "start", cwd=repo)
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    with pytest.raises(GitError) as info:
        gitrepo.commit_and_push(repo, ["dvc.lock"], message="lock", author_name="bot", author_email="bot@example.com",
                                branch="main", sleep=lambda _seconds: None)
    assert info.value.exit_code == EXIT_GIT
    assert "git push to origin main was refused" in info.value.message
    assert "(the `PUSH_TOKEN` secret)" in info.value.hint
    assert "PUSH_TOKEN:" in (ROOT / ".github" / "workflows" / "main-rebuild.yml").read_text()


def test_nothing_to_commit_pushes_nothing(tmp_path):
    repo = tmp_path / "repo"
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    git("add", "dvc.lock", cwd=repo)
    git("commit", "-q", "-m", "lock", cwd=repo)
    result = gitrepo.commit_and_push(repo, ["dvc.lock"], message="lock", author_name="bot", author_email="bot@example.com",
                                     branch="main")
    assert result.sha is None and result.attempts == 0
