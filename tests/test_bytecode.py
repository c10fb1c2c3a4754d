"""The setup action's bytecode cache (lockstep.bytecode) and the wait for an environment installed
in the background (lockstep.projectenv), on real interpreters and files."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lockstep import bytecode, projectenv
from lockstep.errors import InputError


def environment(root: Path, name: str, source: str = "VALUE = 1\n") -> Path:
    """A folder shaped like a venv with one package in it, as a fresh install leaves it."""
    env = root / name
    (env / "lib" / "pkg").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr\n")
    (env / "lib" / "pkg" / "__init__.py").write_text("")
    (env / "lib" / "pkg" / "mod.py").write_text(source)
    return env


def imports(env: Path) -> str:
    """Import pkg.mod with the environment's lib on the path, writing bytecode; its VALUE."""
    proc = subprocess.run([sys.executable, "-c", "import pkg.mod; print(pkg.mod.VALUE)"], capture_output=True, text=True, check=True,
                          env={**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(env / "lib")})
    return proc.stdout.strip()


def pyc_of(env: Path) -> Path:
    return next((env / "lib" / "pkg" / "__pycache__").glob("mod.*.pyc"))


def test_kept_bytecode_is_checked_hash_and_serves_a_fresh_install_of_the_same_source(tmp_path):
    env = environment(tmp_path / "job1", "tool")
    assert imports(env) == "1"
    archive = tmp_path / "tool.zip"
    assert bytecode.keep(archive, env) == 2  # pkg/__init__ and pkg/mod
    with zipfile.ZipFile(archive) as kept:
        data = kept.read(pyc_of(env).relative_to(env).as_posix())
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked
    assert data[8:16] == importlib.util.source_hash(b"VALUE = 1\n")

    # the next job: the same source installed afresh (a new mtime), the kept bytecode extracted into it
    fresh = environment(tmp_path / "job2", "tool")
    os.utime(fresh / "lib" / "pkg" / "mod.py", (time.time() + 100, time.time() + 100))
    assert bytecode.link(archive, fresh) == 2
    assert imports(fresh) == "1"
    assert pyc_of(fresh).read_bytes() == data  # used as it is: not compiled again


def test_a_changed_source_is_compiled_again(tmp_path):
    env = environment(tmp_path / "job1", "project")
    imports(env)
    archive = tmp_path / "project.zip"
    bytecode.keep(archive, env)
    fresh = environment(tmp_path / "job2", "project", source="VALUE = 2\n")  # a newer release in range
    bytecode.link(archive, fresh)
    linked = pyc_of(fresh).read_bytes()
    assert imports(fresh) == "2"
    assert pyc_of(fresh).read_bytes() != linked


def test_stale_bytecode_packages_no_longer_installed_and_paths_out_of_the_tree_are_not_carried(tmp_path):
    env = environment(tmp_path / "job1", "tool")
    imports(env)
    (env / "lib" / "pkg" / "mod.py").write_text("VALUE = 3  # edited after it was compiled\n")
    archive = tmp_path / "tool.zip"
    assert bytecode.keep(archive, env) == 1  # only pkg/__init__: mod's bytecode is stale

    fresh = environment(tmp_path / "job2", "tool")
    shutil.rmtree(fresh / "lib" / "pkg")
    (fresh / "lib" / "other").mkdir()
    assert bytecode.link(archive, fresh) == 0
    assert not (fresh / "lib" / "pkg").exists()  # no folder of bytecode that would import as a namespace package

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as evil:
        evil.writestr("../outside/__pycache__/x.cpython-311.pyc", b"x")
    (tmp_path / "outside" / "__pycache__").mkdir(parents=True)
    (tmp_path / "outside" / "x.py").write_text("")
    assert bytecode.link(tmp_path / "evil.zip", fresh) == 0
    assert not (tmp_path / "outside" / "__pycache__" / "x.cpython-311.pyc").exists()


def test_keep_for_cache_keeps_each_environment_and_lockstep_itself_once(tmp_path):
    job = tmp_path / "job"
    imports(environment(job, "tool"))
    imports(environment(job, "project"))
    saved = tmp_path / "cache"
    bytecode.keep_for_cache({})
    bytecode.keep_for_cache({"LOCKSTEP_BYTECODE_SAVE": str(saved)})
    assert not saved.exists()
    asked = {"LOCKSTEP_BYTECODE_SAVE": str(saved), "LOCKSTEP_ENVIRONMENTS": str(job)}
    assert set(bytecode.trees(asked)) == {"tool", "project", bytecode.SOURCE_TREE}  # the tests run lockstep from its source
    py_compile.compile(bytecode.__file__)  # as its first import writes it where bytecode is written
    bytecode.keep_for_cache(asked)
    assert sorted(p.name for p in saved.iterdir()) == ["lockstep-source.zip", "project.zip", "tool.zip"]
    with zipfile.ZipFile(saved / "lockstep-source.zip") as kept:
        assert "lockstep/__pycache__/bytecode.cpython-%d%d.pyc" % sys.version_info[:2] in kept.namelist()
    before = (saved / "tool.zip").read_bytes()
    (job / "tool" / "lib" / "pkg" / "extra.py").write_text("")
    imports(job / "tool")
    bytecode.keep_for_cache(asked)
    assert (saved / "tool.zip").read_bytes() == before


def test_an_archive_restored_from_another_key_is_written_anew(tmp_path):
    """After an upgrade the cache restores the previous key's archives into the folder the job's
    own are kept in: they are replaced by what this job's environments hold, or the new key would
    keep the old key's bytecode for good."""
    job = tmp_path / "job"
    imports(environment(job, "tool"))
    saved = tmp_path / "cache"
    saved.mkdir()
    with zipfile.ZipFile(saved / "tool.zip", "w") as old:
        old.writestr("lib/gone/__pycache__/gone.cpython-311.pyc", b"stale")
    bytecode.keep_for_cache({"LOCKSTEP_BYTECODE_SAVE": str(saved), "LOCKSTEP_ENVIRONMENTS": str(job)})
    with zipfile.ZipFile(saved / "tool.zip") as kept:
        names = kept.namelist()
    assert names and not [name for name in names if "gone" in name]


def test_a_job_that_keeps_it_later_keeps_it_in_its_last_step_only(tmp_path):
    job = tmp_path / "job"
    imports(environment(job, "tool"))
    saved = tmp_path / "cache"
    asked = {"LOCKSTEP_BYTECODE_SAVE": str(saved), "LOCKSTEP_ENVIRONMENTS": str(job), bytecode.KEEP_LATER: "true"}
    bytecode.keep_for_cache(asked)  # lockstep validate, before the comment
    assert not saved.exists()
    proc = subprocess.run([sys.executable, "-m", "lockstep.bytecode", "keep"], capture_output=True, text=True,
                          env={**os.environ, **asked})  # pr-validate.yml's last step
    assert proc.returncode == 0, proc.stderr
    assert "tool.zip" in [p.name for p in saved.iterdir()] and "kept" in proc.stdout


def test_bytecode_sent_to_a_prefix_comes_back_for_the_environments_only(tmp_path):
    # a rebuild whose stages depend on a code folder runs them with PYTHONPYCACHEPREFIX: the
    # environments' bytecode is moved back for the cache, the project's own stays out of its folder
    envs = tmp_path / "envs"
    env = environment(envs, "project")
    project = tmp_path / "project" / "src"
    project.mkdir(parents=True)
    (project / "common.py").write_text("VALUE = 2\n")
    prefix = tmp_path / "pycache"
    subprocess.run([sys.executable, "-c", "import pkg.mod, common"], check=True, env={
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPATH": f"{env / 'lib'}{os.pathsep}{project}", "PYTHONPYCACHEPREFIX": str(prefix)})
    assert not (project / "__pycache__").exists() and not (env / "lib" / "pkg" / "__pycache__").exists()

    assert bytecode.adopt(prefix, {"LOCKSTEP_ENVIRONMENTS": str(envs)}) == 2  # pkg/__init__ and pkg/mod
    moved = pyc_of(env).read_bytes()
    assert not (project / "__pycache__").exists() and not prefix.exists()
    assert bytecode.keep(tmp_path / "project.zip", env) == 2  # what the cache keeps
    assert imports(env) == "1" and pyc_of(env).read_bytes() == moved  # current where it now is: used, not rewritten


def test_setup_extracts_the_bytecode_with_the_base_interpreter(tmp_path):
    """setup.sh runs `python -m lockstep.bytecode link` with the job's Python, before lockstep's
    environment has anything in it."""
    env = environment(tmp_path / "job1", "tool")
    imports(env)
    bytecode.keep(tmp_path / "tool.zip", env)
    fresh = environment(tmp_path / "job2", "tool")
    scripts = Path(bytecode.__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "lockstep.bytecode", "link", str(tmp_path / "tool.zip"), str(fresh)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(scripts)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2 bytecode file(s) of tool restored from the cache"


# --- the project's environment installed in the background ----------------------------------------


def test_waiting_returns_at_once_without_a_background_install():
    projectenv.wait_until_installed({})


def test_waiting_follows_the_install_to_its_end(tmp_path, capsys):
    status = tmp_path / "project.status"
    (tmp_path / "project-install.log").write_text("installing the project's requirements\n::warning::forged\n")
    writer = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(0.3); open({str(status)!r}, 'w').write('0')"])
    started = time.monotonic()
    projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(status)}, timeout=30)
    writer.wait()
    assert time.monotonic() - started >= 0.25
    out = capsys.readouterr().out
    assert "installing the project's requirements" in out
    assert "\n::warning::forged" not in out  # the install ran the PR's build code: its workflow commands are inert


def test_a_failed_background_install_stops_lockstep_with_its_log(tmp_path):
    status = tmp_path / "project.status"
    (tmp_path / "project-install.log").write_text("  × No solution found when resolving dependencies:\n  ╰─▶ no-such-package was not found\n")
    status.write_text("1\n")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pyvenv.cfg").write_text("home = /usr/bin\nimplementation = CPython\nversion_info = 3.11.7\n")
    with pytest.raises(InputError) as failed:
        projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(status)})
    assert "did not install (exit 1)" in failed.value.message and "no-such-package was not found" in failed.value.message
    assert failed.value.exit_code == 2
    assert "it was installed for Python 3.11.7 (the setup's `python-version` input, else `.python-version`" in failed.value.hint


# uv 0.13's words, as it printed them installing these pins into a Python 3.11 environment
TENSORFLOW = (
    "error: No solution found when resolving dependencies\n"
    "  cause: Because tensorflow==2.5.0 has no wheels with a matching Python ABI tag (e.g., `cp311`) and you require "
    "tensorflow==2.5.0, we can conclude that your requirements are unsatisfiable.\n"
    "\n"
    "hint: You require CPython 3.11 (`cp311`), but we only found wheels for `tensorflow` (v2.5.0) with the following "
    "Python ABI tags: `cp36m`, `cp37m`, `cp38`, `cp39`\n"
)
SCIKIT_LEARN = """error: Failed to build `scikit-learn==0.24.2`
  cause: The build backend returned an error
  cause: Call to `setuptools.build_meta:__legacy__.get_requires_for_build_wheel` failed (exit status: 1)

         [stderr]
         ModuleNotFoundError: No module named 'pkg_resources'

hint: This error likely indicates that `scikit-learn@0.24.2` depends on `pkg_resources`, but doesn't declare it as a build dependency.

[tool.uv.extra-build-dependencies]
scikit-learn = ["pkg_resources"]

or `uv pip install pkg_resources` into the environment and re-run with `--no-build-isolation`.
"""
REQUIRES_PYTHON = """  × No solution found when resolving dependencies:
  ╰─▶ Because the current Python version (3.11.7) does not satisfy Python>=3.6,<3.10 and numba==0.53.1 depends on
      Python>=3.6,<3.10, we can conclude that numba==0.53.1 cannot be used.
"""


@pytest.mark.parametrize(("log", "cause"), [
    (TENSORFLOW, "tensorflow==2.5.0 has no wheel for Python 3.11.7 (its wheels are for cp36m, cp37m, cp38, cp39)"),
    (SCIKIT_LEARN, "scikit-learn==0.24.2 has no wheel for Python 3.11.7, and its build from source failed"),
    (REQUIRES_PYTHON, "numba==0.53.1 requires Python >=3.6,<3.10"),
    (TENSORFLOW + SCIKIT_LEARN, "tensorflow==2.5.0 has no wheel for Python 3.11.7 (its wheels are for cp36m, cp37m, cp38, cp39); "
                                "scikit-learn==0.24.2 has no wheel for Python 3.11.7, and its build from source failed"),
    ("  × No solution found when resolving dependencies:\n  ╰─▶ no-such-package was not found\n", ""),
], ids=["no-wheel-for-its-tags", "build-from-source-failed", "requires-python", "both", "something-else"])
def test_the_pinned_release_with_nothing_for_the_python_is_named_from_uvs_words(log, cause):
    assert projectenv.no_wheel(log, "3.11.7") == cause


def test_a_failed_background_install_names_the_pin_with_no_wheel_for_its_python(tmp_path):
    status = tmp_path / "project.status"
    (tmp_path / "project-install.log").write_text("installing the project's requirements from ./requirements.txt\n" + SCIKIT_LEARN)
    status.write_text("1\n")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pyvenv.cfg").write_text("home = /usr/bin\nimplementation = CPython\nversion_info = 3.11.7\n")
    with pytest.raises(InputError) as failed:
        projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(status)})
    assert failed.value.message == ("the project's requirements did not install (exit 1): scikit-learn==0.24.2 has no wheel "
                                    "for Python 3.11.7, and its build from source failed")
    assert "it was installed for Python 3.11.7 (the setup's `python-version` input, else `.python-version`" in failed.value.hint
    assert "raise the pins named to releases made for Python 3.11.7" in failed.value.hint
    assert "set the `python-version` input (3.10 or newer) to a Python they have wheels for" in failed.value.hint


def test_a_failed_install_in_the_setups_step_is_explained_by_projectenv(tmp_path):
    (tmp_path / "project-install.log").write_text(TENSORFLOW)
    (tmp_path / "pyvenv.cfg").write_text("version_info = 3.11.7\n")
    explain = [sys.executable, "-m", "lockstep.projectenv", "explain", str(tmp_path / "project-install.log"), str(tmp_path / "pyvenv.cfg")]
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "scripts"), "GITHUB_ACTIONS": "true"}
    proc = subprocess.run(explain, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0
    assert proc.stdout.startswith("::error title=lockstep setup::the project's requirements did not install: tensorflow==2.5.0 "
                                  "has no wheel for Python 3.11.7 (its wheels are for cp36m, cp37m, cp38, cp39). To fix: raise")
    (tmp_path / "project-install.log").write_text("error: Distribution not found at: file:///nowhere\n")
    proc = subprocess.run(explain, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0 and proc.stdout == ""  # nothing it can name: the log says it


def test_an_install_that_was_killed_is_named_at_once(tmp_path):
    (tmp_path / "project-install.log").write_text("installing the project's requirements\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "project.pid").write_text(f"{gone.pid}\n")
    started = time.monotonic()
    with pytest.raises(InputError, match="stopped without finishing"):
        projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(tmp_path / "project.status")}, timeout=60)
    assert time.monotonic() - started < 5


def test_an_install_that_never_ends_is_named_after_the_timeout(tmp_path):
    with pytest.raises(InputError, match="still installing after 0 s"):
        projectenv.wait_until_installed({"LOCKSTEP_PROJECT_ENV_STATUS": str(tmp_path / "project.status")}, timeout=0.2)
