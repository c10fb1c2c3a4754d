"""Bytecode compiled ahead of the stages' first imports (lockstep/precompile.py): what the scripts
dvc.yaml names import, through the environment's packages, written where Python reads it, and
nothing of the project run or written in its folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lockstep import precompile

PRECOMPILE = Path(precompile.__file__)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def environment(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """A virtual environment's layout holding `files` in its site-packages."""
    env = tmp_path / "env"
    site = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    site.mkdir(parents=True)
    write(site, files)
    return env, site


def compiled(site: Path, module: str) -> bool:
    path = site / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = site / module.replace(".", "/") / "__init__.py"
    return Path(precompile.importlib.util.cache_from_source(str(path))).is_file()


def run(env: Path, project: Path) -> subprocess.CompletedProcess:
    # as setup.sh runs it: no site, no environment variables
    proc = subprocess.run([sys.executable, "-I", "-S", str(PRECOMPILE), str(env), str(project)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


PACKAGES = {
    "alpha/__init__.py": "from . import core\nfrom .shapes import Circle\n",
    "alpha/core.py": "import beta.tools\n\ndef later():\n    import gamma  # only when called\n",
    "alpha/shapes.py": "class Circle:\n    import delta  # a class body runs at import\n",
    "alpha/unused.py": "x = 1\n",
    "beta/__init__.py": "",
    "beta/tools.py": "import json\n",
    "gamma/__init__.py": "",
    "delta.py": "",
    "spaced/inner/mod.py": "",  # a namespace package: no __init__.py
    "marker.py": "open('ran', 'w').write('the module ran')\n",
}


def test_what_the_scripts_dvc_yaml_names_import_is_compiled_and_python_reads_it(tmp_path):
    env, site = environment(tmp_path, PACKAGES)
    project = tmp_path / "project"
    write(project, {
        "dvc.yaml": "stages:\n  evaluate:\n    cmd: python src/evaluate.py --in data\n  train:\n    cmd: python -m src.train\n",
        "src/evaluate.py": "import helpers\nimport spaced.inner.mod\nimport marker\n",
        "src/helpers.py": "from alpha import core\n",  # the script's own folder, as sys.path[0]
        "src/train.py": "import beta\n",
        "src/notebook_only.py": "import gamma\n",  # named by no stage
    })
    proc = run(env, project)
    assert "from 2 script(s)" in proc.stdout
    for module in ("alpha", "alpha.core", "alpha.shapes", "beta", "beta.tools", "delta", "spaced.inner.mod", "marker"):
        assert compiled(site, module), module
    for module in ("gamma", "alpha.unused"):
        assert not compiled(site, module), module  # a function's import, a module nothing imports
    assert not list(project.rglob("__pycache__"))  # the project's folders get none (DVC hashes them)
    assert not (tmp_path / "ran").exists() and not (project / "ran").exists()  # compiled, never run
    # Python takes the files as its own: it loads them, and writes none again
    verbose = subprocess.run([sys.executable, "-v", "-c", "import alpha, beta.tools"], capture_output=True, text=True,
                             cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert verbose.returncode == 0, verbose.stderr
    assert f"code object from '{site}/alpha/__pycache__/core." in verbose.stderr
    assert "# created" not in "\n".join(line for line in verbose.stderr.splitlines() if str(site) in line)


def test_a_second_run_reads_what_is_compiled_and_a_broken_module_stops_nothing(tmp_path):
    env, site = environment(tmp_path, {"ok/__init__.py": "from . import broken, fine\n", "ok/broken.py": "def (:\n",
                                       "ok/fine.py": ""})
    project = tmp_path / "project"
    write(project, {"train.py": "import ok\n"})  # no dvc.yaml: every Python file of the project
    first = run(env, project)
    assert "precompiled 2 module(s)" in first.stdout and compiled(site, "ok.fine") and not compiled(site, "ok.broken")
    written = Path(precompile.importlib.util.cache_from_source(str(site / "ok" / "fine.py")))
    before = written.stat().st_mtime_ns
    second = run(env, project)
    assert "precompiled 0 module(s)" in second.stdout and "(2 already compiled)" in second.stdout
    assert written.stat().st_mtime_ns == before


def test_relative_imports_resolve_in_their_package():
    code = compile("from . import a\nfrom ..b import c\nfrom .d import *\nimport e.f\n", "x", "exec")
    assert precompile.imports(code, "pkg.sub.mod", package=False) == ["pkg.sub", "pkg.sub.a", "pkg.b", "pkg.b.c", "pkg.sub.d", "e.f"]
    assert precompile.imports(code, "pkg.sub", package=True)[:2] == ["pkg.sub", "pkg.sub.a"]


def test_an_environment_without_packages_for_this_python_is_nothing_to_do(tmp_path):
    proc = run(tmp_path / "nothing", tmp_path)
    assert "nothing precompiled" in proc.stdout
