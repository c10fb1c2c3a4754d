"""The lock check on dependencies that overlap another stage's output without being its path
(tests/projects/overlapping-outputs): `train` reads data/raw/train.csv inside `prepare`'s folder
output data/raw, `evaluate` reads the folder `models`, which holds `train`'s models/model.json and
a file git carries. CI's checkout has pulled none of that data: `stale_stages` compares dvc.lock's
hashes with the upstream output's `.dir` listing, as `dvc status` on the developer's machine would.

In process, on a real DVC repository built once per module (`dvc repro` and `dvc push` to a local
folder remote) and copied per test; the tests of the same fixture through the CLI are in
tests/test_shapes.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockstep import dvcrepo
from lockstep.errors import DvcError

from conftest import _rebind_dvc_logging, git
from localbed import _dvc_repo

pytestmark = pytest.mark.unit
FIXTURE = Path(__file__).parent / "projects" / "overlapping-outputs"
# relative to <root>/project/.dvc/: a copy of <root> reaches its own remote
REMOTE = "../../remote"


@pytest.fixture(scope="module")
def _template(tmp_path_factory) -> Path:
    """The fixture trained and pushed, its lock and code committed, with a file of git's in `models`."""
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("overlapping")
    project = root / "project"
    shutil.copytree(FIXTURE, project)
    (project / "models").mkdir()
    (project / "models" / "README.md").write_text("models/model.json: the threshold `train` learns\n")
    git("init", "-q", "-b", "main", str(project), cwd=root)
    _rebind_dvc_logging()
    Repo.init(str(project)).close()
    config = project / ".dvc" / "config"
    config.write_text(f"[core]\n    remote = local\n['remote \"local\"']\n    url = {REMOTE}\n")
    with _dvc_repo(project) as repo:
        repo.reproduce()
        repo.push()
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "first model", cwd=project)
    return root


@pytest.fixture
def project(_template, tmp_path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(_template, root, symlinks=True)
    return root / "project"


def ci_checkout(project: Path) -> None:
    """What CI's checkout holds of the data: none of it (git does not carry DVC's outputs)."""
    shutil.rmtree(project / "data")
    (project / "models" / "model.json").unlink()


def stale(project: Path) -> list[str]:
    return [s.describe() for s in dvcrepo.stale_stages(dvcrepo.open_repo(project))]


def reproduce(project: Path, stage: str) -> None:
    """The developer's `dvc repro <stage> --single-item` (the stages after it not reproduced)."""
    with _dvc_repo(project) as repo:
        repo.reproduce(stage, single_item=True)


def listing_object(project: Path, output: str, store: Path) -> Path:
    """Where `store` (the cache's or the remote's `files/md5`) keeps `output`'s `.dir` listing."""
    import yaml

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    oid = next(out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", []) if out["path"] == output)
    assert oid.endswith(".dir"), oid
    return store / "files" / "md5" / oid[:2] / oid[2:]


def test_dependencies_overlapping_outputs_match_the_lock_with_none_of_the_data(project):
    # the file inside `prepare`'s folder and the folder holding `train`'s output, neither in the
    # workspace: the lock's hashes and the upstream listing are all there is to compare
    ci_checkout(project)
    assert stale(project) == []


def test_a_changed_file_inside_a_folder_output_is_named_with_its_stage_and_its_unchanged_sibling_is_not(project):
    # the training split changes, the test split does not: `train` is stale, `evaluate` (which
    # reads data/raw/test.csv in the same folder output) is not
    script = project / "src" / "prepare.py"
    script.write_text(script.read_text().replace('("train", 300)', '("train", 301)'))
    reproduce(project, "prepare")
    ci_checkout(project)
    assert stale(project) == ["stage 'train' would re-run because data/raw/train.csv no longer matches the output "
                              "of stage 'prepare' in dvc.lock"]


def test_a_folder_holding_another_stages_output_is_stale_when_that_output_or_its_own_files_change(project):
    # a model retrained without re-evaluating: the folder `evaluate` read holds another model.json
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("steps: 1", "steps: 7"))
    reproduce(project, "train")
    ci_checkout(project)
    assert stale(project) == ["stage 'evaluate' would re-run because models no longer matches the output of stage "
                              "'train' in dvc.lock"]
    # re-evaluated: in step again; then a file git carries in that folder changes
    with _dvc_repo(project) as repo:
        repo.checkout(force=True)
        repo.reproduce("evaluate", single_item=True)
    ci_checkout(project)
    assert stale(project) == []
    (project / "models" / "README.md").write_text("edited\n")
    assert stale(project) == ["stage 'evaluate' would re-run because models no longer matches the output of stage "
                              "'train' in dvc.lock"]


def test_a_listing_missing_from_the_cache_is_read_from_the_remote(project):
    # CI's cache is empty: the listing of data/raw comes from the remote, and only the listing
    ci_checkout(project)
    shutil.rmtree(project / ".dvc" / "cache")
    assert stale(project) == []
    assert not list((project / ".dvc").glob("cache/files/md5/*/*"))  # nothing was fetched
    assert not (project / "data").exists()


def test_a_listing_in_neither_the_cache_nor_the_remote_is_named_with_the_fix(project):
    ci_checkout(project)
    for store in (project / ".dvc" / "cache", project.parent / "remote"):
        listing_object(project, "data/raw", store).unlink()
    with pytest.raises(DvcError) as raised:
        stale(project)
    oid = listing_object(project, "data/raw", project / ".dvc" / "cache").parent.name
    message, hint = str(raised.value), raised.value.hint
    assert message.startswith(f"the listing of data/raw ({oid}"), message
    assert "which dvc.lock records, is in neither the cache nor the remote" in message, message
    assert hint == "a dependency inside data/raw is checked against it: run `dvc push` for data/raw and re-run"


def test_the_remote_check_beside_a_pull_opens_none_of_dvcs_databases(project):
    """PR validation asks the remote in a thread while the pull writes DVC's SQLite databases
    (validate.step_lock_vs_remote), and a second connection to them fails with "database is
    locked": what to check is read first (`remote_probe`), and asking the remote opens none. Here
    every database of the project is held under an exclusive lock while the probe runs."""
    import sqlite3

    ci_checkout(project)
    repo = dvcrepo.open_repo(project)
    probe = dvcrepo.remote_probe(repo)
    databases = sorted(Path(repo.site_cache_dir).rglob("*.db"))
    assert databases, "DVC opened no database while reading what to check"
    held = [sqlite3.connect(database, timeout=0, isolation_level=None) for database in databases]
    try:
        for connection in held:
            connection.execute("BEGIN EXCLUSIVE")
        check = probe()
    finally:
        for connection in held:
            connection.close()
    assert check.ok and check.checked >= 4, check.missing
