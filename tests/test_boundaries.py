"""One module per outside system: only dvcrepo imports DVC, only tracking imports MLflow, and the
DVC internals dvcrepo must read are checked here against the installed DVC, so that a DVC
upgrade that changes them fails this test instead of quietly turning a check off."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lockstep import dvcrepo
from lockstep.errors import DvcError

pytestmark = pytest.mark.unit

PACKAGE = Path(dvcrepo.__file__).parent
# The one module allowed to import each outside system's packages.
OWNERS = {"dvc": "dvcrepo.py", "mlflow": "tracking.py"}
EXCEPTIONS: set[tuple[str, str]] = set()


def _system(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "dvc" or top.startswith(("dvc_", "dvclive")):
        return "dvc"
    if top == "mlflow" or top.startswith("mlflow_"):
        return "mlflow"
    return None


def imports_of(source: str) -> list[tuple[str, int]]:
    """Every absolute module an `import` or `from … import` names, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def test_only_the_owning_module_imports_dvc_or_mlflow():
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for module, line in imports_of(path.read_text("utf-8")):
            system = _system(module)
            if system and rel != OWNERS[system] and (system, rel) not in EXCEPTIONS:
                offending.append(f"{rel}:{line} imports {module} (only {OWNERS[system]} talks to {system})")
    assert not offending, "\n".join(offending)


def test_the_import_scan_sees_nested_and_from_imports():
    source = textwrap.dedent("""
        import os
        def f():
            from dvc.dependency.param import ParamsDependency
            import mlflow.entities as e
        from .tracking import Tracker
    """)
    systems = [_system(module) for module, _line in imports_of(source)]
    assert systems == [None, "dvc", "mlflow"]  # the relative import is lockstep's own


# --- the DVC internals dvcrepo reads --------------------------------------------------------------


def _dvc_version() -> str:
    from dvc import __version__

    return __version__


@pytest.fixture(scope="module")
def _reproduced(tmp_path_factory) -> Path:
    """A three-stage DVC project with params, stage metrics, top-level metrics and a cached
    folder output, reproduced in a child process (the real CLI writes the real dvc.lock)."""
    project = tmp_path_factory.mktemp("boundaries") / "p"
    (project / "src").mkdir(parents=True)
    (project / "params.yaml").write_text("prepare: {n: 2}\ntrain: {seed: 1}\n")
    (project / "src" / "prepare.py").write_text(
        "import os\nos.makedirs('data', exist_ok=True)\n"
        "for i in range(2):\n    open(f'data/{i}.txt', 'w').write(str(i))\n")
    (project / "src" / "train.py").write_text("open('model.bin', 'w').write('m')\n")
    (project / "src" / "evaluate.py").write_text(
        "import json, os\nos.makedirs('eval', exist_ok=True)\n"
        "json.dump({'auc': 0.9}, open('metrics.json', 'w'))\njson.dump({'loss': 0.1}, open('eval/summary.json', 'w'))\n")
    (project / "dvc.yaml").write_text(textwrap.dedent("""
        metrics:
          - eval/summary.json
        stages:
          prepare:
            cmd: python src/prepare.py
            deps: [src/prepare.py]
            params: [prepare]
            outs: [data]
          train:
            cmd: python src/train.py
            deps: [src/train.py, data]
            params: [train.seed]
            outs: [model.bin]
          evaluate:
            cmd: python src/evaluate.py
            deps: [src/evaluate.py, model.bin, data]
            metrics:
              - metrics.json:
                  cache: false
            outs: [eval]
    """))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for argv in (["init", "--no-scm", "-q"], ["repro", "-q"]):
        proc = subprocess.run([sys.executable, "-m", "dvc", *argv], cwd=project, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return project


@pytest.fixture
def pipeline(_reproduced, tmp_path):
    """A private copy of the reproduced project, opened."""
    project = tmp_path / "p"
    shutil.copytree(_reproduced, project, symlinks=True)
    repo = dvcrepo.open_repo(project)
    yield project, repo
    repo.close()


def test_the_dvc_internals_lockstep_reads_are_what_it_expects(pipeline):
    project, repo = pipeline
    version = _dvc_version()
    # Index._metrics (private): the top-level `metrics:`, {dvc.yaml path: [entries]}
    assert dvcrepo._top_level_metrics(repo) == {str(project / "dvc.yaml"): ["eval/summary.json"]}, version
    assert sorted(dvcrepo.all_metrics_files(repo)) == ["eval/summary.json", "metrics.json"], version
    # the stage graph's edges point from a stage to the stages it depends on
    assert [s.name for s in dvcrepo.downstream(repo, ["train"])] == ["train", "evaluate"], version
    assert dvcrepo.upstream_of(repo, ["train"]) == {"prepare", "train"}, version
    assert [s.name for s in dvcrepo.pipeline_stages(repo)] == ["prepare", "train", "evaluate"], version
    # params dependencies: their lock values (hash_info.value) and their declared keys
    files, params = dvcrepo.input_paths(repo, ["train"])
    assert files == {"dvc.yaml", "src/train.py"} and params == {"params.yaml": {"train.seed"}}, version
    assert dvcrepo.params_files(repo) == ["params.yaml"], version
    assert dvcrepo.stage_inputs(repo, ["train"])[1] == {"train.seed": 1}, version
    # outputs: the lock's hash, the folder's `.dir`, cache: false
    model = dvcrepo.output_owner(repo, "model.bin")
    assert model is not None and model.stage == "train" and len(model.md5) == 32 and model.cached, (model, version)
    metrics = dvcrepo.output_owner(repo, "metrics.json")
    assert metrics is not None and not metrics.cached, (metrics, version)
    assert dvcrepo.dep_outputs(repo, ["evaluate"]) == ["model.bin", "data"], version
    assert dvcrepo.cached_outputs(repo, ["evaluate"]) == ["eval"], version
    assert dvcrepo.git_tracked_outputs(repo, ["evaluate"]) == ["metrics.json"], version
    assert dvcrepo.metrics_stages(repo) == ["evaluate"], version
    assert dvcrepo.stale_stages(repo) == [], version


def test_a_stale_lock_is_read_the_same_way(pipeline):
    """cmd, a param and a code file changed: each named, read from dvc.lock and DVC's dependency status."""
    project, repo = pipeline
    repo.close()
    (project / "params.yaml").write_text("prepare: {n: 3}\ntrain: {seed: 1}\n")
    (project / "src" / "train.py").write_text("open('model.bin', 'w').write('n')\n")
    text = (project / "dvc.yaml").read_text()
    (project / "dvc.yaml").write_text(text.replace("cmd: python src/evaluate.py", "cmd: python src/evaluate.py --fast"))
    stale = {s.name: [c.describe() for c in s.changes] for s in dvcrepo.stale_stages(dvcrepo.open_repo(project))}
    assert stale == {
        "prepare": ["params.yaml:prepare.n changed (2 -> 3)"],
        "train": ["src/train.py was modified"],
        "evaluate": ["its command changed ('python src/evaluate.py' -> 'python src/evaluate.py --fast')"],
    }, _dvc_version()


def test_a_dvc_that_keeps_top_level_metrics_otherwise_stops_lockstep_loudly(pipeline):
    _project, repo = pipeline

    class Changed:
        def __init__(self, index):
            self.index = index
            self.root_dir = repo.root_dir

    class NoMetrics:
        graph = repo.index.graph

    class OtherShape:
        _metrics = [("dvc.yaml", "eval/summary.json")]

    for index in (NoMetrics(), OtherShape()):
        with pytest.raises(DvcError) as caught:
            dvcrepo._top_level_metrics(Changed(index))
        assert f"this DVC (dvc {_dvc_version()}) keeps the top-level `metrics:`" in caught.value.message


# --- MLflow entities stay in tracking ----------------------------------------------------------


def test_the_registry_answers_with_lockstep_versions_not_mlflow_entities(bed, tmp_path):
    from lockstep import tracking

    bed.use_mlflow()
    tracker = tracking.Tracker(retries=0, timeout=10)
    run_id = tracker.start_run("lockstep/boundaries", "r", {"lockstep.kind": "test"})
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(b"m")
    created = tracker.register("boundaries", run_id=run_id, artifact="model", fallback_file=model_file,
                               identity={"lockstep.model_md5": "abc"}, tags={"lockstep.lock_commit": "c0ffee"})
    tracker.set_alias("boundaries", "candidate", created.version)
    found = [tracker.version_by_alias("boundaries", "candidate"), tracker.get_version("boundaries", created.version),
             *tracker.versions("boundaries")]
    assert all(type(v) is tracking.Version for v in found), [type(v) for v in found]
    assert {(v.version, v.run_id, v.tags["lockstep.lock_commit"], v.created) for v in found} == {("1", run_id, "c0ffee", False)}
    assert tracker.version_by_alias("boundaries", "champion") is None


def test_the_mlflow_client_process_holds_the_credentials_only_in_memory_and_answers_with_errors():
    """PR validation's MLflow client runs in a child (TrackerProcess): its /proc/<pid>/environ,
    which a PR's code could read, has no credential and no MLflow setting, yet it uses them; its
    errors come back as lockstep's, and lockstep's own process never imports MLflow."""
    script = textwrap.dedent("""
        import os, sys
        os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
        os.environ["MLFLOW_TRACKING_PASSWORD"] = "pw-in-memory-only"
        from lockstep import tracking
        from lockstep.errors import MlflowError
        client = tracking.TrackerProcess(retries=0, timeout=2)
        client.ready()
        block = open(f"/proc/{client._process.pid}/environ", "rb").read()
        assert b"pw-in-memory-only" not in block and b"MLFLOW_" not in block, block
        try:
            client.experiment_id("lockstep/process")
        except MlflowError as exc:
            assert "127.0.0.1:9" in exc.message and exc.hint, vars(exc)
        else:
            raise SystemExit("no error from an unreachable server")
        try:
            client.no_such_method
        except AttributeError:
            pass
        else:
            raise SystemExit("an unknown method was accepted")
        client.close()
        assert client._process.returncode == 0, client._process.returncode
        assert "mlflow" not in sys.modules, "imported in lockstep's own process"
        # a child that dies is no reason to stop: waiting for it goes on, the calls say what happened
        gone = tracking.TrackerProcess(retries=0, timeout=2)
        gone._process.kill()
        gone._process.wait()
        gone.ready()
        try:
            gone.start_run("e", "r", {})
        except MlflowError as exc:
            assert "ended without an answer" in exc.message, exc.message
        else:
            raise SystemExit("no error from a dead client")
        gone.close()
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_data_dvc2_added_is_judged_by_size_and_file_count_against_a_dvc3_dependency():
    # DVC 2's hash (CRLF read as LF) and DVC 3's of the same folder differ in value: only size and
    # count can be compared without the data; the same hash name compares by value
    from types import SimpleNamespace

    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta

    def entry(name, value, size, nfiles=2):
        return SimpleNamespace(hash_info=HashInfo(name, value), meta=Meta(size=size, nfiles=nfiles))

    legacy = entry("md5-dos2unix", "1040513bf2f46ac88d534ae8c61b4e84.dir", 5955)
    assert dvcrepo._same_data(legacy, entry("md5", "aeff70e471ca3df65707ab8f98e42fc9.dir", 5955))
    assert not dvcrepo._same_data(legacy, entry("md5", "aeff70e471ca3df65707ab8f98e42fc9.dir", 5956))
    assert not dvcrepo._same_data(legacy, entry("md5", "aeff70e471ca3df65707ab8f98e42fc9.dir", 5955, nfiles=3))
    same_name = entry("md5", "aeff70e471ca3df65707ab8f98e42fc9.dir", 5955)
    assert dvcrepo._same_data(same_name, entry("md5", "aeff70e471ca3df65707ab8f98e42fc9.dir", 5955))
    assert not dvcrepo._same_data(same_name, entry("md5", "00ff70e471ca3df65707ab8f98e42fc9.dir", 5955))
