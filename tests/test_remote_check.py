"""The DVC behaviour behind lockstep's own remote check, reproduced here rather than cited: with
one file of a directory output deleted from the remote, `dvc status -c` still reports the remote
in sync (it asks for the directory's `.dir` listing only), and lockstep names the missing file."""

from __future__ import annotations

import json

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_DVC, EXIT_OK

from conftest import BIN, lockstep, run
from test_shapes import SHAPES, make_repo

pytestmark = pytest.mark.integration


def test_dvc_status_says_in_sync_while_lockstep_names_the_file_missing_from_the_remote(tmp_path):
    repo = make_repo(next(s for s in SHAPES if s.name == "cached-stage-metrics"), tmp_path)
    lock = (repo.project / "dvc.lock").read_text()
    listing = next(line.split("md5: ")[1].strip() for line in lock.splitlines() if ".dir" in line)
    tree = json.loads((repo.remote / "files" / "md5" / listing[:2] / listing[2:]).read_text())
    member = next(entry for entry in tree if entry["relpath"] == "train.csv")
    (repo.remote / "files" / "md5" / member["md5"][:2] / member["md5"][2:]).unlink()
    # the developer's workspace, whose cache holds everything: DVC compares its cache with the remote
    status = run(str(BIN / "dvc"), "status", "-c", cwd=repo.project, env={"MLFLOW_TRACKING_URI": ""})
    assert "in sync" in status.stdout, status.stdout  # DVC does not see it

    checkout = repo.clone("ci")
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout
    assert "data: train.csv" in proc.stdout


def test_a_cloud_versioned_remote_is_named_as_such_with_what_to_do(tmp_path):
    """DVC keeps no content-addressed objects in a `version_aware` remote (files stay at their
    paths, by object version), so a check by content hash cannot verify it: said, not 'missing'."""
    repo = make_repo(next(s for s in SHAPES if s.name == "cached-stage-metrics"), tmp_path)
    checkout = repo.clone("ci")
    run(str(BIN / "dvc"), "remote", "add", "-f", "-d", "versioned", "s3://acme-ml/dvc", cwd=checkout / "ml")
    run(str(BIN / "dvc"), "remote", "modify", "versioned", "version_aware", "true", cwd=checkout / "ml")
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout)
    assert proc.returncode == EXIT_DVC, proc.stdout
    assert "s3://acme-ml/dvc is cloud-versioned (`version_aware` or `worktree`)" in proc.stdout
    assert "use a remote without `version_aware`/`worktree`" in proc.stderr
    assert "missing" not in proc.stdout


def test_the_only_remote_is_the_default_and_of_several_without_one_none_is_guessed(tmp_path):
    """A team that pushes with `dvc push -r storage` and never set a default: with one remote there
    is nothing to choose; with two, lockstep does not guess which one CI should check and push to."""
    repo = make_repo(next(s for s in SHAPES if s.name == "cached-stage-metrics"), tmp_path)
    checkout = repo.clone("ci")
    run(str(BIN / "dvc"), "remote", "default", "--unset", cwd=checkout / "ml")
    assert "remote = storage" not in (checkout / "ml" / ".dvc" / "config").read_text()
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    run(str(BIN / "dvc"), "remote", "add", "backup", str(tmp_path / "backup"), cwd=checkout / "ml")
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout)
    assert proc.returncode == EXIT_DVC, proc.stdout
    assert "the project has 2 DVC remotes (backup, storage) and none is the default" in proc.stdout
    assert "`dvc remote default NAME`" in proc.stderr


def test_a_default_remote_defined_only_on_the_developers_machine_is_named_with_the_fix(tmp_path):
    """`[core] remote = azure` committed, the `azure` section in the developer's .dvc/config.local
    (not in git): CI's checkout has a default that names nothing."""
    repo = make_repo(next(s for s in SHAPES if s.name == "cached-stage-metrics"), tmp_path)
    checkout = repo.clone("ci")
    config = checkout / "ml" / ".dvc" / "config"
    config.write_text(config.read_text().replace("remote = storage", "remote = azure"))
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout)
    assert proc.returncode == EXIT_DVC, proc.stdout
    assert "names the remote 'azure' as its default, and no such remote is configured here (only storage)" in proc.stdout
    assert "`dvc remote add azure URL`" in proc.stderr and "`dvc remote add --local azure URL`" in proc.stderr
