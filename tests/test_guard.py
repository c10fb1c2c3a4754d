"""The guard sees what a pull request's code changed among the files lockstep and the job's later
steps run: real files, real change times (no clock is mocked)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockstep import guard, sandbox
from lockstep.errors import EXIT_CHECKS_FAILED

pytestmark = pytest.mark.unit


def tool_tree(root: Path) -> Path:
    """A small environment as uv leaves one: a package, its bytecode, its wheel's RECORD."""
    site = root / "lib" / "site-packages"
    package = site / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (package / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc").write_bytes(b"old bytecode")
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"VALUE = 1\n").digest()).rstrip(b"=").decode()
    (site / "pkg-1.0.dist-info").mkdir()
    (site / "pkg-1.0.dist-info" / "RECORD").write_text(f"pkg/__init__.py,sha256={digest},10\npkg-1.0.dist-info/RECORD,,\n")
    return root


def next_tick() -> None:
    """File times come from the kernel's coarse clock (a tick is 1 to 10 ms): a write in the same
    tick as the file's creation keeps its change time. A PR's code runs long after lockstep's
    environment was installed; a test waits a tick to be in the same position."""
    time.sleep(0.03)


def watching(tmp_path: Path, **files: Path) -> guard.Guard:
    watch = guard.Guard([guard.Tree(tool_tree(tmp_path / "env"), records=True)], step_files=dict(files))
    watch.snapshot()
    return watch


def test_nothing_changed_passes_and_says_what_it_watched(tmp_path):
    watch = watching(tmp_path)
    watch.verify("the test command")
    assert watch.findings == []
    assert "file(s) in 1 folder(s)" in watch.describe()


def test_a_source_rewritten_with_its_old_times_and_size_is_still_seen(tmp_path):
    watch = watching(tmp_path)
    module = tmp_path / "env" / "lib" / "site-packages" / "pkg" / "__init__.py"
    stat = module.stat()
    next_tick()
    module.write_text("VALUE = 2\n")  # same size
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the modification time put back: the change time cannot be
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the test command")
    assert f"{module} (changed)" in caught.value.message
    assert caught.value.exit_code == EXIT_CHECKS_FAILED
    assert "lockstep stops here with no verdict" in caught.value.message


def test_another_hard_link_to_an_installed_file_is_not_a_change_while_its_content_is_as_recorded(tmp_path):
    """uv installs by hard-linking its cache: a PR's `uv sync` linking (or a build environment
    linking then removing) the same cache file moves the change time of lockstep's copy. The
    wheel's RECORD digest, read before the PR's code ran, decides."""
    watch = watching(tmp_path)
    module = tmp_path / "env" / "lib" / "site-packages" / "pkg" / "__init__.py"
    os.link(module, tmp_path / "cache-entry")
    watch.verify("the test command")
    (tmp_path / "cache-entry").unlink()  # linked and unlinked: the link count is back, the change time is not
    watch.verify("the test command")
    assert watch.findings == []

    # the same size, the modification time set back, another link: the content gives it away
    stat = module.stat()
    os.link(module, tmp_path / "cache-entry")
    next_tick()
    module.write_text("VALUE = 9\n")
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the test command")
    assert f"{module} (changed)" in caught.value.message


def test_a_change_time_that_moved_on_a_file_no_record_knows_is_a_change(tmp_path):
    watch = watching(tmp_path)
    loose = tmp_path / "env" / "lib" / "site-packages" / "lockstep-source.pth"
    watch.verify("nothing")  # (the file does not exist yet: nothing to see)
    loose.write_text("/opt/lockstep/scripts\n")
    watch.snapshot()
    stat = loose.stat()
    os.link(loose, tmp_path / "other-link")
    next_tick()
    loose.write_text("/opt/evilstep/scripts\n")  # the same size
    os.utime(loose, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(guard.Tampered):
        watch.verify("the test command")


def test_skipped_folders_by_name_and_by_suffix(tmp_path):
    root = tool_tree(tmp_path / "env")
    (root / "lockstep.egg-info").mkdir()
    (root / "test").mkdir()
    watch = guard.Guard([guard.Tree(root, skip=frozenset({"test", "*.egg-info"}))])
    watch.snapshot()
    (root / "lockstep.egg-info" / "PKG-INFO").write_text("a build wrote this")
    (root / "test" / "x.py").write_text("")
    watch.verify("the test command")
    (root / "lockstep.egg-info-not").mkdir()
    with pytest.raises(guard.Tampered):
        watch.verify("the test command")


def test_an_added_file_and_a_removed_one_are_seen(tmp_path):
    watch = watching(tmp_path)
    site = tmp_path / "env" / "lib" / "site-packages"
    (site / "evil.pth").write_text("import os\n")
    (site / "pkg" / "__init__.py").unlink()
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the re-evaluation")
    assert f"{site / 'evil.pth'} (added)" in caught.value.message
    assert f"{site / 'pkg' / '__init__.py'} (removed)" in caught.value.message
    assert caught.value.message.startswith("while the re-evaluation ran")


def test_bytecode_written_meanwhile_is_replaced_by_lockstep_s_own_and_not_called_tampering(tmp_path):
    tag = sys.implementation.cache_tag
    watch = watching(tmp_path)
    cache = tmp_path / "env" / "lib" / "site-packages" / "pkg" / "__pycache__"
    forged = cache / f"__init__.{tag}.pyc"
    forged.write_bytes(b"bytecode that claims the source's times")
    orphan = cache / f"gone.{tag}.pyc"  # no source beside it: deleted, not compiled
    orphan.write_bytes(b"compiled from a source that is not there")
    watch.verify("the test command")  # only bytecode: no finding
    assert not orphan.exists()
    compiled = forged.read_bytes()
    assert compiled[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(compiled[4:8], "little") == 0b11  # checked-hash: the source's hash is checked on import
    assert watch.removed_bytecode == 2 and watch.compiled_again == 1 and watch.findings == []
    assert "2 bytecode file(s) written meanwhile deleted, 1 compiled again by lockstep" in watch.describe()
    watch.verify("the test command")  # lockstep's own bytecode is the new baseline
    assert watch.removed_bytecode == 2

    fresh = tmp_path / "env" / "lib" / "site-packages" / "fresh" / "__pycache__"
    fresh.mkdir(parents=True)
    (fresh / f"x.{tag}.pyc").write_bytes(b"new")
    with pytest.raises(guard.Tampered):  # the new package folder itself is not bytecode
        watch.verify("the test command")
    assert not (fresh / f"x.{tag}.pyc").exists()


def test_a_write_to_the_steps_command_files_is_undone_and_reported(tmp_path):
    github_env = tmp_path / "set_env_1234"
    github_env.write_text("KEPT=1\n")
    summary = tmp_path / "step_summary_1234"  # not created yet: a file the PR creates is removed
    watch = watching(tmp_path, GITHUB_ENV=github_env, GITHUB_STEP_SUMMARY=summary)
    with github_env.open("a") as handle:
        handle.write("LD_PRELOAD=/tmp/evil.so\n")
    summary.write_text("# passed\n")
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the test command")
    assert github_env.read_text() == "KEPT=1\n"
    assert not summary.exists()
    assert "GITHUB_ENV (the step's command file" in caught.value.message
    assert "GITHUB_STEP_SUMMARY" in caught.value.message


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_git_metadata_new_objects_are_fine_hooks_and_config_are_not(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "one")
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir"))
    watch = guard.Guard([guard.Tree(git_dir, only=guard._GIT_WATCHED, new_ok=guard._GIT_NEW_OK,
                                    new_not_ok=guard._GIT_NEW_NOT_OK, by_content=True, by_stamp=("objects/",))])
    watch.snapshot()
    git(repo, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "two")  # new objects, a moved ref
    git(repo, "update-ref", "refs/exps/x", "HEAD")  # a new ref, as `dvc exp run` writes
    (git_dir / "index").write_bytes(b"an index rewritten")  # not watched: git and DVC refresh it
    head = (git_dir / "HEAD").read_bytes()
    (git_dir / "HEAD").write_bytes(head)  # rewritten with the same content
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the test command")
    branch = head.decode().split("/", 2)[-1].strip()
    assert caught.value.message.count("(changed)") == 1 and f"refs/heads/{branch} (changed)" in caught.value.message

    watch.snapshot()
    (git_dir / "hooks" / "post-checkout").write_text("#!/bin/sh\ntouch pwned\n")
    with (git_dir / "config").open("a") as handle:
        handle.write("[core]\n\tfsmonitor = touch pwned\n")
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the test command")
    assert "hooks/post-checkout (added)" in caught.value.message
    assert f"{git_dir / 'config'} (changed)" in caught.value.message

    # a new ref that replaces an existing object, and another store of objects, are not new refs
    # or objects like any other: they change what git shows of the commits already there
    watch.snapshot()
    (repo / "fake").write_text("another blob\n")
    fake = git(repo, "hash-object", "-w", str(repo / "fake"))
    git(repo, "replace", "-f", git(repo, "rev-parse", "HEAD^{tree}"), fake)
    (git_dir / "objects" / "info").mkdir(exist_ok=True)
    (git_dir / "objects" / "info" / "alternates").write_text("/tmp/elsewhere/objects\n")
    with pytest.raises(guard.Tampered) as caught:
        watch.verify("the test command")
    assert "refs/replace/" in caught.value.message and "objects/info/alternates (added)" in caught.value.message
    assert "objects/" + fake[:2] not in caught.value.message  # the blob itself is a new object like any other


def test_for_job_watches_locksteps_python_source_git_and_command_files(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    github_env = tmp_path / "env-file"
    github_env.write_text("")
    monkeypatch.setenv("GITHUB_ENV", str(github_env))
    watch = guard.for_job(repo, Path(git(repo, "rev-parse", "--absolute-git-dir")))
    roots = [tree.root for tree in watch.trees]
    assert Path(sys.prefix).resolve() in roots or any(Path(guard.__file__).resolve().is_relative_to(r) for r in roots)
    assert any(Path(guard.__file__).resolve().is_relative_to(root) for root in roots)  # lockstep's own source
    assert (repo / ".git").resolve() in roots
    assert watch.step_files == {"GITHUB_ENV": github_env}
    assert not any(a != b and a.is_relative_to(b) for a in roots for b in roots)  # no folder walked twice


def test_contained_checks_after_the_command_and_its_leftovers_are_gone(tmp_path):
    watch = watching(tmp_path)
    target = tmp_path / "env" / "lib" / "site-packages" / "pkg" / "__init__.py"
    with pytest.raises(guard.Tampered):
        sandbox.run([sys.executable, "-c", f"open({str(target)!r}, 'a').write('# more')"], cwd=tmp_path,
                    env=dict(os.environ), what="the test command", guard=watch)
    watch.snapshot()
    assert sandbox.run([sys.executable, "-c", "pass"], cwd=tmp_path, env=dict(os.environ), what="the test command",
                       guard=watch) == 0
