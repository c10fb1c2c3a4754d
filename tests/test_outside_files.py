"""Metrics files outside the project: absolute paths and `..` in lockstep.yaml are refused with
file and line; a metrics file that is a symbolic link leading out of the project is refused by
name and never read, whether lockstep.yaml names it or dvc.yaml declares it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockstep import dvcrepo
from lockstep.errors import EXIT_CONFIG, EXIT_DVC, DvcError, LockstepError

from conftest import git, lockstep
from test_shapes import SHAPES, make_repo

SECRET = "0.987654321"


@pytest.mark.parametrize(("path", "why"), [
    ("/etc/passwd", "an absolute path"),
    ("../outside/metrics.json", "a path with `..`"),
    ("eval/../../metrics.json", "a path with `..`"),
])
def test_metrics_files_outside_the_project_are_refused_with_file_and_line(tmp_path, path, why):
    (tmp_path / "lockstep.yaml").write_text(f"version: 1\nmetrics:\n  files:\n    - metrics.json\n    - {path}\n")
    proc = lockstep("check-config", "--working-directory", ".", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_CONFIG, proc.stdout
    assert f"lockstep.yaml:5: metrics.files[1]: '{path}' is {why}" in proc.stdout
    assert "file=lockstep.yaml,line=5" in proc.stdout


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret" / "metrics.json"
    secret.parent.mkdir()
    secret.write_text(f'{{"accuracy": {SECRET}}}\n')
    return secret


@pytest.mark.integration
def test_a_metrics_file_named_in_lockstep_yaml_that_links_outside_is_not_read(tmp_path):
    repo = make_repo(SHAPES[1], tmp_path)
    (repo.project / "linked.json").symlink_to(_secret(tmp_path))
    with pytest.raises(LockstepError) as caught:
        dvcrepo.read_metrics(dvcrepo.open_repo(repo.project), files=["linked.json"])
    assert "'linked.json'" in caught.value.message and "outside the DVC project" in caught.value.message
    assert SECRET not in caught.value.message


@pytest.mark.integration
def test_a_committed_metrics_file_that_links_outside_is_refused_by_name(tmp_path):
    repo = make_repo(SHAPES[6], tmp_path)  # yaml-metrics: scores.yaml is git-carried (`cache: false`)
    scores = repo.project / "scores.yaml"
    scores.unlink()
    scores.symlink_to(_secret(tmp_path))
    head = repo.commit("scores from elsewhere")
    checkout = repo.clone("ci")
    assert (checkout / "ml" / "scores.yaml").is_symlink()
    with pytest.raises(DvcError) as caught:
        dvcrepo.read_metrics(dvcrepo.open_repo(checkout / "ml"))
    assert caught.value.file == "scores.yaml" and SECRET not in caught.value.message
    # through the CLI: a named DVC error, the secret nowhere in the log or the summary
    summary = tmp_path / "summary.md"
    proc = lockstep("validate", "--working-directory", "ml", "--head-sha", head, "--report-dir", str(tmp_path / "report"),
                    cwd=checkout, env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == EXIT_DVC, proc.stdout[-3000:]
    assert "metrics file 'scores.yaml' is a symbolic link leading outside the DVC project" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr + summary.read_text()
    # read as a revision (the base side of a later PR), DVC gets git's blob, never the link's target
    git("checkout", "-q", "HEAD~1", cwd=repo.dev)
    read = dvcrepo.read_metrics(dvcrepo.open_repo(repo.project), rev=head)
    assert read.values == {}  # the link text is not a mapping of metrics
