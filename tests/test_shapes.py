"""Real DVC project shapes (tests/projects/<shape>/), taken as they are: none of their dvc.yaml,
params or .gitignore is shaped for lockstep. Each is adopted with `lockstep init`, then goes
through PR validation (an improving PR passes; a stale lock and an unpushed output fail, named)
and a main rebuild, through the CLI, with a local-folder DVC remote and a bare git origin; the
other tests here take the shapes' own hand-written lockstep.yaml."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_CONFIG, EXIT_DVC, EXIT_OK

from conftest import BIN, DeveloperDvc, git, lockstep, run

pytestmark = pytest.mark.integration
PROJECTS = Path(__file__).parent / "projects"
BOT = "github-actions[bot]"


@dataclass(frozen=True)
class Shape:
    name: str
    root: bool = False  # the DVC project is the repository's root
    params: str = "params.yaml"
    setup: tuple[tuple[str, ...], ...] = ()  # commands before the first `dvc repro`
    model: str = "models/model.json"  # the output a developer's retrain changes
    ignored: tuple[str, ...] = ()  # git-carried outputs the project's .gitignore keeps out of git
    steps: str = "steps: {}"  # how the params file spells the training param `steps`
    repro: tuple[str, ...] = ()  # how the developer reproduces (`dvc repro` and these arguments)
    legacy: bool = False  # its data was added by DVC 2 (tests/dvc2add.py)
    env: tuple[tuple[str, str], ...] = ()  # what the developer's shell gives the stages (lockstep.yaml `env:` for CI)
    imported: str = ""  # this folder is `dvc import`-ed from a data registry (a DVC repository of its own)
    artifact: str = ""  # the model's name under dvc.yaml's `artifacts:`
    code_first: bool = False  # the code is committed before the first `dvc repro` (dvclive reads git's HEAD)
    bytecode: bool = False  # the developer's Python writes bytecode beside the code (Python's default)
    label: str = ""  # what tells this variant of a shape apart in the test's id

    @property
    def dev_env(self) -> dict[str, str]:
        """What the developer's shell gives the stages: the shape's env, and whether Python writes
        bytecode (off unless the shape says, as in this machine's environment and many dev containers)."""
        return {**dict(self.env), "PYTHONDONTWRITEBYTECODE": "" if self.bytecode else "1"}

    @property
    def id(self) -> str:
        return (self.name + ("-dvc2" if self.legacy else "") + ("-import" if self.imported else "")
                + ("-bytecode" if self.bytecode else "") + (f"-{self.label}" if self.label else ""))

    @property
    def folder(self) -> str:
        return "." if self.root else "ml"


SHAPES = [
    Shape("dvclive-layout"),
    Shape("cached-stage-metrics", model="model.json"),
    Shape("ignored-results", ignored=("results/scores.json",)),
    Shape("root-env", root=True, env=(("PYTHONPATH", "."),)),
    Shape("one-stage", model="model"),
    Shape("params-file-toplevel", params="config/train.yaml"),
    Shape("yaml-metrics"),
    Shape("dvc-add-data", setup=(("python", "make_raw.py"), ("dvc", "add", "data/raw"))),
    # raw data added by DVC 2 and never re-added: a legacy hash, objects at the remote's root
    Shape("dvc-add-data", setup=(("python", "make_raw.py"), ("python", str(Path(__file__).parent / "dvc2add.py"), "data/raw")),
          legacy=True),
    # raw data imported from a data registry: `dvc push` leaves it in the registry's own remote
    Shape("dvc-add-data", setup=(("python", "make_raw.py"),), imported="data/raw"),
    Shape("templated-foreach"),
    Shape("get-started-layout", model="model.pkl", artifact="threshold-classifier", code_first=True),
    Shape("src-layout-package", env=(("PYTHONPATH", "src"),)),
    Shape("pipelines-wdir-pickle", params="params.toml", steps="steps = {}", model="models/model.joblib",
          repro=("--all-pipelines",)),
    # every stage depends on the whole code folder, where running the code writes `__pycache__`:
    # the developer's Python does not write it (PYTHONDONTWRITEBYTECODE, as in many dev containers),
    # and CI's rebuild must not add its own to dvc.lock; or it does, and `.dvcignore` leaves it out
    Shape("code-folder"),
    Shape("code-folder", bytecode=True, setup=(("sh", "-c", "echo __pycache__/ >> .dvcignore"),)),
    # DVC's experiments example: the training run's dvclive folder (results/train) and the
    # evaluation's metrics committed to git, named by top-level `metrics:`, `plots:` and `params:`,
    # output by no stage; the model named under `artifacts:`
    Shape("experiments-layout", artifact="threshold-model"),
    # dependencies that overlap other stages' outputs without naming them: a file inside a folder
    # output (`data/raw/train.csv` of `data/raw`), a folder that holds an output (`models`)
    Shape("overlapping-outputs"),
    # an evaluation that reads an upstream output it does not declare (data/test.csv)
    Shape("undeclared-eval-data"),
    # the accuracy alone in a `metrics:` file (`metrics.txt`: `0.93`) beside a one-row CSV report
    Shape("scalar-metrics"),
    # data preparation, training and evaluation each declare metrics (cached by DVC): the training
    # run's own (a wall-clock time) are not an evaluation's
    Shape("training-metrics"),
    # no metrics declared: the evaluation's scores are a plain cached output (`outs: [eval/metrics.json]`)
    Shape("plain-output-metrics"),
    # the prepared data is `push: false` (large, and made again from the code): the remote never
    # holds it, so CI makes it again before the evaluation and the rebuild's training
    Shape("unpushed-intermediate"),
    # the evaluation in a pipeline file of its own (evaluation/dvc.yaml, its own dvc.lock), and the
    # training run's metrics named by a dvc.yaml that holds only `metrics:` (training/dvc.yaml)
    Shape("split-pipelines", repro=("--all-pipelines",)),
    # the evaluation reads the model without declaring it (not downstream of the training in the
    # DAG), so the developer forces it: `dvc repro -f`
    Shape("unlinked-evaluation", repro=("-f",)),
    # the team's committed DVC config links the workspace to the cache (`cache.type symlink`, for large data)
    Shape("yaml-metrics", setup=(("dvc", "config", "cache.type", "symlink"),), label="symlink-cache"),
]


@dataclass
class Repo(DeveloperDvc):
    """The consumer-repository scaffold with a shape's project, its local-folder DVC remote and
    its model's name in the registry."""

    shape: Shape = SHAPES[0]
    remote: Path = Path()
    model_name: str = ""

    def commit(self, message: str, branch: str = "main") -> str:  # type: ignore[override]
        return super().commit(message, push=branch)

    def clone(self, name: str, branch: str = "main", depth: int | None = 1) -> Path:
        return super().clone(name, branch, depth)

    def set_steps(self, steps: int) -> None:
        self.set_param(self.shape.steps.format(1), self.shape.steps.format(steps), self.shape.params)

    def origin_files(self, branch: str = "main") -> list[str]:
        return git("ls-tree", "-r", "--name-only", branch, cwd=self.origin).splitlines()


def make_repo(shape: Shape, tmp_path: Path, *, init: bool = False, remote: str | None = None,
              endpoint: str | None = None, remote_options: tuple[tuple[str, ...], ...] = (),
              source: Path | None = None) -> Repo:
    """The shape in a repository with a bare origin, trained and pushed by a developer. The DVC
    remote is a local folder unless `remote` (and an S3-compatible `endpoint`) is given;
    `remote_options` are `dvc remote modify` arguments for it (e.g. credentials in config.local);
    `source` is a variant of the shape's project folder."""
    root = tmp_path / "repo"
    repo = Repo.create(root, folder=shape.folder, shape=shape, remote=root / "dvc-remote",
                       model_name=f"shape-{shape.id}-{tmp_path.name[-12:]}")
    shutil.copytree(source or PROJECTS / shape.name, repo.project, dirs_exist_ok=True)
    config = repo.project / "lockstep.yaml"
    if init:
        config.unlink()  # `lockstep init` writes it, after the developer's first `dvc repro`
    else:
        config.write_text(config.read_text().replace("MODEL", repo.model_name))
    repo.dvc("init", "-q", *([] if shape.root else ["--subdir"]))
    repo.set_remote(remote or str(repo.remote), endpoint=endpoint)
    for options in remote_options:
        repo.dvc("remote", "modify", *options)
    env = shape.dev_env  # the developer's shell has what the stages need
    if shape.code_first:
        repo.commit("The code")
    for command in shape.setup:
        run(*(str(BIN / command[0]) if command[0] == "dvc" else command[0], *command[1:]), cwd=repo.project, env=env)
    if shape.imported:  # the data moves to a registry of its own, and comes back as an import
        registry = data_registry(tmp_path / "registry", repo.project / shape.imported, shape.imported)
        repo.dvc("import", "-q", str(registry), shape.imported, "-o", shape.imported)
    run(str(BIN / "dvc"), "repro", *shape.repro, cwd=repo.project, env=env)
    repo.dvc("push")
    if shape.legacy:  # DVC 3 pushed the DVC 2 listing where DVC 2 kept it: at the remote's root
        assert list(repo.remote.glob("[0-9a-f][0-9a-f]/*.dir")), sorted(map(str, repo.remote.rglob("*")))
    if init:
        proc = lockstep("init", "--working-directory", shape.folder, "--repository", "acme/churn-model", cwd=repo.dev)
        assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    repo.commit("First model")
    return repo


def data_registry(root: Path, data: Path, path: str) -> Path:
    """A git repository that keeps `data` at `path` with DVC, pushed to a DVC remote of its own."""
    (root / path).parent.mkdir(parents=True)
    shutil.move(data, root / path)
    git("init", "-q", "-b", "main", cwd=root)
    for argv in (("init", "-q"), ("add", "-q", path), ("remote", "add", "-q", "-d", "store", str(root.parent / "registry-remote")), ("push", "-q")):
        run(str(BIN / "dvc"), *argv, cwd=root)
    git("add", "-A", cwd=root)
    git("-c", "user.name=registry", "-c", "user.email=registry@example.com", "commit", "-q", "-m", "data", cwd=root)
    return root


def validate(repo: Repo, checkout: Path, base: str, head: str):
    report = checkout.parent / f"{checkout.name}-report"
    outputs = checkout.parent / f"{checkout.name}-outputs.txt"
    proc = lockstep(
        "validate", "--working-directory", repo.shape.folder, "--base-sha", base, "--head-sha", head, "--pr-number", "3",
        "--repository", "acme/churn-model", "--report-dir", str(report),
        cwd=checkout, env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs)},
    )
    results = json.loads((report / "results.json").read_text())
    return proc, results, {c["id"]: c for c in results["checks"]}


def open_pr(repo: Repo, branch: str, *, steps: int, repro: bool = True, push: bool = True) -> tuple[str, str, Path]:
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", branch, cwd=repo.dev)
    repo.set_steps(steps)
    env = repo.shape.dev_env
    if repro:
        run(str(BIN / "dvc"), "repro", *repo.shape.repro, cwd=repo.project, env=env)
    if push:
        repo.dvc("push")
    head = repo.commit(f"steps {steps}", branch)
    git("checkout", "-q", "main", cwd=repo.dev)
    return base, head, repo.clone(f"ci-{branch}", branch)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
def test_shape_is_adopted_validates_and_rebuilds_as_it_is(shape, tmp_path):
    # the team adds lockstep with `lockstep init` after its first `dvc repro`, and changes nothing else
    repo = make_repo(shape, tmp_path, init=True)
    from lockstep import adopt, config as configmod

    cfg = configmod.load(repo.project, required=True)  # what init wrote is valid
    assert cfg.model_path == shape.model, cfg
    if shape.artifact:  # dvc.yaml named the model
        assert cfg.model_name == shape.artifact, cfg
    assert cfg.gates and all(g.direction == "higher" for g in cfg.gates)
    # a training split is not gated beside its held-out one: a PR that overfits less lowers it
    assert not any(adopt._tokens(g.metric) & adopt._TRAINING for g in cfg.gates), cfg.gates
    assert cfg.env == dict(shape.env)
    if shape.name == "experiments-layout":  # the evaluation's file is gated; the training run's is its own
        assert [g.metric for g in cfg.gates] == ["test.accuracy"], cfg.gates
    if shape.name == "training-metrics":  # only the stage after the model's is re-run and gated
        assert cfg.evaluation_stages == ("evaluation",) and [g.metric for g in cfg.gates] == ["accuracy"], cfg
        assert any("training the model" in n or "train(s) the model" in n for n in adopt.plan(repo.project).notes)
    if shape.name == "plain-output-metrics":  # init names the file and the stage, for review
        assert cfg.metrics_files == ("eval/metrics.json",) and cfg.evaluation_stages == ("evaluate",), cfg
        assert [g.metric for g in cfg.gates] == ["accuracy"], cfg.gates
        assert "# REVIEW: dvc.yaml declares no metrics" in (repo.project / "lockstep.yaml").read_text()
    if shape.name == "scalar-metrics":  # named by its file, as `dvc metrics show` names it; the CSV gives no number
        assert [g.metric for g in cfg.gates] == ["metrics.txt"], cfg.gates
    if shape.name == "unlinked-evaluation":  # the model the evaluation opens, though it does not declare it
        assert cfg.evaluation_stages == ("evaluate",), cfg
        assert any("without listing it among its deps" in n for n in adopt.plan(repo.project).notes)
    notes = [n for n in adopt.plan(repo.project).notes if "dependency folder" in n]
    assert not notes  # no false note; bytecode left out by .dvcignore is none either
    workflows = repo.dev / ".github" / "workflows"
    assert f"working-directory: {shape.folder}\n" in (workflows / "ml-pr.yml").read_text()
    lint = run(str(BIN / "actionlint"), "-color=false", *map(str, sorted(workflows.glob("*.yml"))), cwd=repo.dev, check=False)
    assert lint.returncode == 0, lint.stdout
    if shape is SHAPES[0]:  # never overwrites without --force (the same for every shape)
        again = lockstep("init", "--working-directory", shape.folder, cwd=repo.dev)
        assert again.returncode == 2 and "already exist" in again.stdout
        assert lockstep("init", "--working-directory", shape.folder, "--force", cwd=repo.dev).returncode == EXIT_OK
        assert not git("status", "--porcelain", cwd=repo.dev)  # rewritten as it was

    # an improving PR passes, its metrics named as `dvc metrics show` names them
    base, head, checkout = open_pr(repo, "better", steps=50)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    assert checks["re-evaluation"]["status"] == "pass", checks["re-evaluation"]
    assert checks["gates"]["status"] == "pass", checks["gates"]
    gate = next(row for row in results["metrics"] if row["gate"] is not None)
    assert results["project"] == ("churn-model" if shape.root else "ml")
    # a training change is not an evaluation change: the base's evaluation is not needed, and says so
    assert checks["trusted-evaluation"]["status"] == "pass" and checks["trusted-evaluation"]["summary"].startswith("not needed")
    if shape.ignored:
        # neither side's committed values exist anywhere: the report says why, with the rule
        assert gate["base"] is None and gate["pr"] > 0.9
        for check in ("re-evaluation", "base"):
            assert any(".gitignore line" in d and "results/" in d for d in checks[check]["details"]), checks[check]
    else:
        assert gate["pr"] > gate["base"], results["metrics"]
    if shape.imported:  # checked where it lives: not in this project's remote
        assert f"fetched from their own remotes when needed: {shape.imported} (from " in checks["lock-vs-remote"]["summary"]
    steps = "train.steps" if shape.params == "params.yaml" else f"{shape.params}:train.steps"
    assert {"name": steps, "base": 1, "pr": 50} in results["params"], results["params"]
    if shape.label == "symlink-cache":  # CI's pull links the outputs to DVC's cache, as the config says
        assert (checkout / shape.folder / shape.model).is_symlink()
    if shape.name == "split-pipelines":  # the evaluation of the other pipeline file re-ran; the training's metrics compared
        assert "evaluation/dvc.yaml:evaluate" in checks["re-evaluation"]["summary"], checks["re-evaluation"]
        fit = next(row for row in results["metrics"] if row["name"] == "fit.correct")
        assert fit["pr"] > fit["base"] and fit["gate"] is None, results["metrics"]
    if shape.name == "unpushed-intermediate":  # `push: false` data: not asked of the remote, made again by CI
        assert "made again by CI when needed: data" in checks["lock-vs-remote"]["summary"], checks["lock-vs-remote"]
        assert "CI makes it again with prepare before the evaluation" in checks["pull"]["summary"], checks["pull"]
        assert any("byte for byte what dvc.lock records" in d for d in checks["re-evaluation"]["details"]), checks["re-evaluation"]

    # a PR retrained with 12 steps, not pushed, then edited to 9 without `dvc repro`: the stale
    # lock names the stage's param, the unpushed output is named by its path
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "stale", cwd=repo.dev)
    repo.set_steps(12)
    run(str(BIN / "dvc"), "repro", *shape.repro, cwd=repo.project, env=shape.dev_env)
    repo.set_param(shape.steps.format(12), shape.steps.format(9), shape.params)
    head = repo.commit("steps 9, lock of 12, not pushed", "stale")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, _results, checks = validate(repo, repo.clone("ci-stale", "stale"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    assert "train.steps changed (12 -> 9)" in checks["lock-vs-code"]["summary"], checks["lock-vs-code"]
    assert checks["lock-vs-remote"]["status"] == "fail"
    assert Path(shape.model).as_posix() in checks["lock-vs-remote"]["summary"]
    # nothing verified the committed metrics (unreadable where DVC caches them): the gates do not judge them
    assert checks["gates"]["status"] == "skip" and checks["gates"]["summary"].startswith("not judged"), checks["gates"]

    # main rebuild of a param change merged without a lock: one commit, nothing ignored committed;
    # with a params file of another name, the change is the rebuild's own `file:key=value`
    extra: tuple[str, ...] = ()
    if shape.params == "params.yaml":
        repo.set_steps(30)
        merged = repo.commit("thirty steps, lock left to CI")
    else:
        merged = git("rev-parse", "HEAD", cwd=repo.dev)
        extra = ("--set-params", f"{shape.params}:train.steps=30")
    outputs = tmp_path / "rebuild-outputs.txt"
    # bytecode on, as the setup action's `lockstep` and `dvc` commands have it on GitHub's runners
    proc = lockstep("rebuild", "--working-directory", shape.folder, "--branch", "main", "--register", "false", *extra,
                    cwd=repo.clone("ci-main"), env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs),
                                                    "PYTHONDONTWRITEBYTECODE": ""})
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    if extra:  # the params file, edited in place, is in the lock commit
        assert f"{'' if shape.root else 'ml/'}{shape.params}" in git("show", "--name-only", "--format=", "main", cwd=repo.origin)
        assert shape.steps.format(30) in git("show", f"main:{'' if shape.root else 'ml/'}{shape.params}", cwd=repo.origin)
    log = git("log", "--format=%an %s", "main", cwd=repo.origin).splitlines()
    assert log[0].startswith(f"{BOT} lockstep: rebuild") and merged[:12] in log[0]
    if shape.name == "experiments-layout":  # what the retrain wrote into its committed folder goes with the lock
        assert "ml/results/train/metrics.json" in git("show", "--name-only", "--format=", "main", cwd=repo.origin)
    files = repo.origin_files()
    for path in shape.ignored:
        assert f"{'' if shape.root else 'ml/'}{path}" not in files
        assert "is not committed" in proc.stdout and ".gitignore line" in proc.stdout
    if shape.name == "split-pipelines":  # each pipeline file's lock, and the training's metrics, in the lock commit
        committed = git("show", "--name-only", "--format=", "main", cwd=repo.origin).split()
        assert {"ml/dvc.lock", "ml/evaluation/dvc.lock", "ml/training/metrics.json"} <= set(committed), committed
    if shape.name == "unlinked-evaluation":  # the evaluation DVC does not link to the model re-ran after the training
        assert "run after the training: evaluate" in proc.stdout, proc.stdout[-4000:]
        assert "ml/metrics.json" in git("show", "--name-only", "--format=", "main", cwd=repo.origin)
    if shape.name == "unpushed-intermediate":  # made again before the training, and still not pushed
        assert "also run: prepare, which makes data" in proc.stdout, proc.stdout[-4000:]
        import yaml

        lock = yaml.safe_load(git("show", "main:ml/dvc.lock", cwd=repo.origin))["stages"]
        data, model = lock["prepare"]["outs"][0]["md5"], lock["train"]["outs"][0]["md5"]
        assert list(repo.remote.rglob(model[2:])) and not list(repo.remote.rglob(data[2:]))
    # the lock on main now matches the code
    fresh = repo.clone("after")
    from lockstep import dvcrepo

    assert dvcrepo.stale_stages(dvcrepo.open_repo(fresh / shape.folder)) == []


def test_push_false_data_is_made_by_the_base_for_its_evaluation_and_a_push_false_model_is_refused(tmp_path):
    shape = next(s for s in SHAPES if s.name == "unpushed-intermediate")
    repo = make_repo(shape, tmp_path)
    # a PR that changes its evaluation: the base's evaluation judges its model, on data the base's
    # own prepare stage makes (no remote holds it), before any of the PR's code runs
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "kind", cwd=repo.dev)
    evaluate = repo.project / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace("/ len(rows)", "/ len(rows) * 0 + 1", 1))
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    head = repo.commit("a kinder evaluation", "kind")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, results, checks = validate(repo, repo.clone("ci-kind", "kind"), base, head)
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "warn" and any("evaluate.py changed" in d for d in trusted["details"]), proc.stdout[-4000:]
    auc = next(row for row in results["metrics"] if row["name"] == "auc.test")
    assert 0.5 < auc["pr"] < 1  # the base's evaluation, on the base's data, not the PR's 1.0

    # the model itself `push: false`: CI would have to retrain it, so it says so and pulls nothing
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "unpushed-model", cwd=repo.dev)
    pipeline = repo.project / "dvc.yaml"
    pipeline.write_text(pipeline.read_text().replace("outs: [models/model.json]", "outs:\n      - models/model.json:\n          push: false"))
    repo.set_steps(7)
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    head = repo.commit("the model is not pushed", "unpushed-model")
    from lockstep import adopt

    assert any("is `push: false` in dvc.yaml" in note for note in adopt.plan(repo.project).notes)  # `lockstep init` says so
    git("checkout", "-q", "main", cwd=repo.dev)
    assert not any("`push: false`" in note for note in adopt.plan(repo.project).notes)  # the data alone is no matter
    checkout = repo.clone("ci-unpushed-model", "unpushed-model")
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    pull = checks["pull"]
    assert pull["status"] == "fail" and "reads models/model.json, which dvc.yaml marks `push: false`" in pull["summary"], pull
    assert "stage train makes it, the stage that makes the model" in pull["summary"], pull
    assert "re-evaluation" not in checks and checks["gates"]["status"] == "skip", checks
    assert not (checkout / "ml" / "models" / "model.json").exists()  # nothing was pulled or made


def test_push_false_data_that_comes_out_otherwise_in_ci_turns_the_re_evaluation_into_a_warning(tmp_path):
    # the preparation also stamps the time into its output: CI's copy differs from the developer's,
    # though the scores agree, so the verdict says the evaluation read CI's data
    shape = next(s for s in SHAPES if s.name == "unpushed-intermediate")
    repo = make_repo(shape, tmp_path)
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "stamped", cwd=repo.dev)
    prepare = repo.project / "prepare.py"
    prepare.write_text(prepare.read_text() + "\nimport time\nopen(os.path.join('data', 'made_at.txt'), 'w').write(repr(time.time()))\n")
    run(str(BIN / "dvc"), "repro", cwd=repo.project)
    repo.dvc("push")
    head = repo.commit("the preparation stamps its time", "stamped")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, _results, checks = validate(repo, repo.clone("ci-stamped", "stamped"), base, head)
    reevaluation = checks["re-evaluation"]
    assert proc.returncode == EXIT_OK and reevaluation["status"] == "warn", proc.stdout[-4000:]
    assert "on inputs CI made again, which differ from the developer's" in reevaluation["summary"], reevaluation
    assert any("data: CI made" in d and "does not make the same data twice" in d for d in reevaluation["details"]), reevaluation


def test_a_sub_folder_pipeline_whose_pr_inflates_its_evaluation_is_judged_by_the_base_evaluation(tmp_path):
    # the lock beside pipelines/dvc.yaml is the one read, and the base's evaluation is found there too
    shape = next(s for s in SHAPES if s.name == "pipelines-wdir-pickle")
    repo = make_repo(shape, tmp_path)
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "kind", cwd=repo.dev)
    evaluate = repo.project / "src" / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace("accuracy = sum(", "accuracy = 0.3 + sum(", 1))
    run(str(BIN / "dvc"), "repro", *shape.repro, cwd=repo.project)
    head = repo.commit("a kinder evaluation", "kind")
    git("checkout", "-q", "main", cwd=repo.dev)

    proc, results, checks = validate(repo, repo.clone("ci-kind", "kind"), base, head)
    assert checks["re-evaluation"]["status"] == "pass", proc.stdout[-4000:]  # the PR's evaluation agrees with itself
    trusted = checks["trusted-evaluation"]
    assert trusted["status"] == "warn" and "src/evaluate.py changed (stage 'pipelines/dvc.yaml:evaluate')" in trusted["details"]
    accuracy = next(row for row in results["metrics"] if row["name"] == "accuracy")
    assert accuracy["pr"] == pytest.approx(0.65)  # the base's evaluation, not the PR's 0.95
    assert checks["model-load"]["status"] == "pass"  # the base's model found through pipelines/dvc.lock


def test_a_lock_that_hashed_bytecode_in_a_code_folder_fails_with_the_fix(tmp_path):
    # the developer's Python wrote src/__pycache__ and DVC hashed it into the folder's entry: no
    # clean checkout can match that hash, and the report says why and what to change
    repo = make_repo(Shape("code-folder", bytecode=True), tmp_path)
    assert list((repo.project / "src" / "__pycache__").glob("common.*.pyc"))  # what the developer's run left
    from lockstep import adopt

    # `lockstep init`, on the developer's machine, sees the files and says so before any PR
    note = next(n for n in adopt.plan(repo.project).notes if "dependency folder src/" in n)
    assert "src/__pycache__/common." in note and "`.dvcignore`" in note and "dvc commit -f" in note
    base, head, checkout = open_pr(repo, "better", steps=50)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    summary = checks["lock-vs-code"]["summary"]
    assert "DVC's hash of the folder src in dvc.lock counts 5 files" in summary and "this checkout 4 files" in summary
    assert "`__pycache__/`" in summary and "`.dvcignore`" in summary, summary
    assert checks["lock-vs-code"]["details"][0].startswith("stage 'prepare' would re-run because DVC's hash of the folder src")


def test_committed_evaluation_metrics_named_after_their_stage_are_recomputed_not_trusted(tmp_path):
    # DVC's experiments layout: no stage outputs results/evaluate/metrics.json; the evaluate stage,
    # which it is named after, writes it. A PR that commits better numbers there, and a model no
    # better, is caught by the re-evaluation, and its gate judges what CI computed
    shape = next(s for s in SHAPES if s.name == "experiments-layout")
    repo = make_repo(shape, tmp_path)
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "inflated", cwd=repo.dev)
    (repo.project / "results" / "evaluate" / "metrics.json").write_text('{"test": {"accuracy": 0.99}}')
    head = repo.commit("better numbers", "inflated")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, results, checks = validate(repo, repo.clone("ci-inflated", "inflated"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    assert checks["re-evaluation"]["status"] == "fail" and "test.accuracy" in checks["re-evaluation"]["summary"]
    accuracy = next(row for row in results["metrics"] if row["name"] == "test.accuracy")
    assert accuracy["pr"] == accuracy["base"] < 0.99, results["metrics"]  # CI's number, the base model's

    # the same numbers, from an evaluation that no longer writes its file: the committed copy is
    # not read as recomputed (it is removed before the stage runs, as DVC removes an output)
    git("checkout", "-q", "-b", "silent", base, cwd=repo.dev)
    evaluate = repo.project / "src" / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace('json.dump({"test"', 'False and json.dump({"test"'))
    run(str(BIN / "dvc"), "repro", cwd=repo.project, env=shape.dev_env)  # a current lock
    (repo.project / "results" / "evaluate" / "metrics.json").write_text('{"test": {"accuracy": 0.99}}')
    head = repo.commit("the evaluation writes nothing; better numbers", "silent")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, results, checks = validate(repo, repo.clone("ci-silent", "silent"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    assert checks["re-evaluation"]["status"] == "fail", checks["re-evaluation"]
    accuracy = next(row for row in results["metrics"] if row["name"] == "test.accuracy")
    assert accuracy["pr"] != 0.99 and checks["gates"]["status"] != "pass", (results["metrics"], checks["gates"])


def test_an_invalid_dvc_yaml_is_a_named_dvc_error_with_its_line(tmp_path):
    repo = make_repo(SHAPES[1], tmp_path)
    text = (repo.project / "dvc.yaml").read_text()
    (repo.project / "dvc.yaml").write_text(text.replace("    cmd: python train.py", "    cmd: python train.py\n   bad: [", 1))
    head = repo.commit("broken dvc.yaml")
    proc = lockstep("validate", "--working-directory", "ml", "--head-sha", head, cwd=repo.clone("ci"),
                    env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_DVC, proc.stdout
    assert "file=ml/dvc.yaml,line=9" in proc.stdout and "not valid YAML" in proc.stdout


def test_an_unknown_key_in_dvc_yaml_is_a_named_dvc_error(tmp_path):
    repo = make_repo(SHAPES[1], tmp_path)
    text = (repo.project / "dvc.yaml").read_text()
    (repo.project / "dvc.yaml").write_text(text.replace("    cmd: python train.py", "    cmd: python train.py\n    comand: x", 1))
    head = repo.commit("unknown key")
    proc = lockstep("rebuild", "--working-directory", "ml", "--register", "false", cwd=repo.clone("ci"),
                    env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_DVC, proc.stdout
    assert "extra keys not allowed" in proc.stdout and "file=ml/dvc.yaml,line=8" in proc.stdout
    assert git("rev-parse", "main", cwd=repo.origin) == head  # nothing committed


def test_init_templates_render_the_example_workflows():
    from lockstep import adopt

    example = Path(__file__).resolve().parents[1] / "example-project"
    rendered = adopt.workflow_texts("example-project", "OWNER/lockstep@v1", "example-project")
    for name, text in rendered.items():
        assert text == (example / "workflows" / name).read_text(), name


# DVC's Hydra integration: `dvc exp run` composes params.yaml from conf/ before it runs the stages
# (`dvc repro` does not), and the project commits the composition
HYDRA = Shape("hydra-layout", setup=(("dvc", "config", "hydra.enabled", "true"),))
SMALL = "conf/train/small.yaml"


def hydra_pr(repo: Repo, branch: str, *, steps: int, compose: bool) -> tuple[str, str, Path]:
    """A PR that changes the training config in conf/ and reproduces: with `dvc exp run` (which
    composes params.yaml first), or with `dvc repro` (which leaves params.yaml as it was)."""
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", branch, cwd=repo.dev)
    (repo.project / SMALL).write_text(f"steps: {steps}\n")
    run(str(BIN / "dvc"), *(("exp", "run") if compose else ("repro",)), cwd=repo.project, env=HYDRA.dev_env)
    repo.dvc("push")
    head = repo.commit(f"steps {steps} in {SMALL}", branch)
    git("checkout", "-q", "main", cwd=repo.dev)
    return base, head, repo.clone(f"ci-{branch}", branch)


def rebuild(repo: Repo, *extra: str):
    checkout = repo.clone(f"ci-main-{len(list(repo.root.glob('ci-main-*')))}")
    return lockstep("rebuild", "--working-directory", HYDRA.folder, "--branch", "main", "--register", "false", *extra,
                    cwd=checkout, env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(checkout.parent / f"{checkout.name}.txt")})


def origin_params(repo: Repo) -> dict:
    import yaml

    return yaml.safe_load(git("show", "main:ml/params.yaml", cwd=repo.origin))


def test_a_hydra_project_whose_params_are_composed_validates_and_rebuilds(tmp_path):
    repo = make_repo(HYDRA, tmp_path)
    assert "[hydra]" in (repo.project / ".dvc" / "config").read_text()
    base, head, checkout = hydra_pr(repo, "better", steps=50, compose=True)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    assert checks["lock-vs-code"]["status"] == "pass"
    assert "params.yaml is what conf/config.yaml composes" in checks["lock-vs-code"]["summary"], checks["lock-vs-code"]
    assert {"name": "train.steps", "base": 1, "pr": 50} in results["params"], results["params"]

    # the merged PR, rebuilt: params.yaml is composed as it is committed, and reproduced
    git("merge", "-q", "--ff-only", "better", cwd=repo.dev)
    git("push", "-q", "origin", "main", cwd=repo.dev)
    merged = git("rev-parse", "main", cwd=repo.origin)
    proc = rebuild(repo)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    assert "composed params.yaml from conf/config.yaml: unchanged" in proc.stdout
    assert git("rev-parse", "main", cwd=repo.origin) == merged  # the lock reproduced: nothing to commit
    assert origin_params(repo)["train"] == {"steps": 50}


def test_a_hydra_pr_that_changes_conf_without_composing_fails_the_lock_check(tmp_path):
    # the developer edited conf/ and ran `dvc repro`: dvc.lock matches params.yaml, which still
    # says 1 step, and the model was trained on it; conf/ says 50
    repo = make_repo(HYDRA, tmp_path)
    base, head, checkout = hydra_pr(repo, "stale", steps=50, compose=False)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    lock = checks["lock-vs-code"]
    assert lock["status"] == "fail"
    assert lock["summary"].startswith("params.yaml is stale: it is not what `dvc exp run` composes from conf/config.yaml"), lock
    assert "params.yaml:train.steps is 1 where the composition gives 50" in lock["summary"]
    assert "Run `dvc exp run`" in lock["summary"] and "commit params.yaml and dvc.lock" in lock["summary"]
    assert lock["details"] == ["params.yaml:train.steps is 1 where the composition gives 50"]
    # nothing ran on what the lock check could not vouch for, and nothing was written in the checkout
    assert checks["pull"]["status"] == "skip" and checks["re-evaluation"]["status"] == "skip"
    assert checks["gates"]["status"] == "skip", checks["gates"]
    assert git("status", "--porcelain", cwd=checkout) == ""  # the composition went to a temporary file
    assert (checkout / "ml" / "params.yaml").read_text() == (repo.project / "params.yaml").read_text()


def test_a_hydra_rebuild_composes_a_merged_conf_change_trains_on_it_and_commits_params(tmp_path):
    # conf/ changed on main and params.yaml was not recomposed (or was edited by hand): the
    # rebuild composes it as `dvc exp run` would, trains on it, and commits it with the lock
    repo = make_repo(HYDRA, tmp_path)
    (repo.project / SMALL).write_text("steps: 30\n")
    merged = repo.commit("thirty steps in conf/, params.yaml left to CI")
    proc = rebuild(repo)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    log = git("log", "--format=%an %s", "main", cwd=repo.origin).splitlines()
    assert log[0].startswith(f"{BOT} lockstep: rebuild") and merged[:12] in log[0]
    assert {"ml/params.yaml", "ml/dvc.lock"} <= set(git("show", "--name-only", "--format=", "main", cwd=repo.origin).splitlines())
    assert origin_params(repo) == {"train": {"steps": 30}, "prepare": {"seed": 7, "noise": 0.1}}
    fresh = repo.clone("after")
    from lockstep import dvcrepo

    opened = dvcrepo.open_repo(fresh / "ml")
    assert dvcrepo.stale_stages(opened) == []  # the lock is of the composed params: trained on 30 steps
    assert dvcrepo.stale_composition(opened)[1] == []
    # a commit on main that changes conf/ while a rebuild runs changes what it composed: its push stops
    from lockstep import rebuild as rebuildmod

    git("pull", "-q", "origin", "main", cwd=repo.dev)
    old = git("rev-parse", "HEAD", cwd=repo.dev)
    (repo.project / "conf" / "train" / "large.yaml").write_text("steps: 60\n")
    new = repo.commit("a larger large")
    reasons = rebuildmod.moved_reasons(repo.project, dvcrepo.open_repo(repo.project), ["train", "evaluate"], old, new)
    assert reasons == ["conf/train/large.yaml changed (params.yaml is composed from conf/)"]


def test_set_params_under_hydra_are_overrides_of_the_composition(tmp_path):
    repo = make_repo(HYDRA, tmp_path)
    start = git("rev-parse", "main", cwd=repo.origin)
    # a key the composition does not have is refused before anything is done
    proc = rebuild(repo, "--set-params", "train.epochs=3")
    assert proc.returncode == 2, proc.stdout[-4000:]
    assert "train.epochs does not exist in what conf/config.yaml composes" in proc.stdout
    assert git("rev-parse", "main", cwd=repo.origin) == start
    # a config group's option, as `dvc exp run -S train=large` chooses it; conf/ is not edited
    proc = rebuild(repo, "--set-params", "train=large,prepare.noise=0.2", "--force-all", "true")
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    assert origin_params(repo) == {"train": {"steps": 50}, "prepare": {"seed": 7, "noise": 0.2}}
    assert "Set-param: train=large" in git("log", "-1", "--format=%B", "main", cwd=repo.origin)
    assert git("show", f"main:ml/{SMALL}", cwd=repo.origin) == "steps: 1"
    from lockstep import dvcrepo

    assert dvcrepo.stale_stages(dvcrepo.open_repo(repo.clone("after") / "ml")) == []


def test_dependencies_overlapping_outputs_are_checked_against_the_lock_and_pulled_alone(tmp_path):
    # `train` depends on data/raw/train.csv inside `prepare`'s folder output data/raw, `evaluate` on
    # the folder models, which holds `train`'s output: CI's checkout has pulled none of them, and
    # the lock check compares the lock's hashes, as `dvc status` on the developer's machine would
    shape = next(s for s in SHAPES if s.name == "overlapping-outputs")
    repo = make_repo(shape, tmp_path)
    base, head, checkout = open_pr(repo, "better", steps=50)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    assert checks["lock-vs-code"]["status"] == "pass", checks["lock-vs-code"]
    # what the evaluation reads, and nothing else: the test split alone, not the training data
    assert checks["pull"]["summary"].startswith("pulled models/model.json, data/raw/test.csv ("), checks["pull"]
    assert (checkout / "ml" / "data" / "raw" / "test.csv").exists()
    assert not (checkout / "ml" / "data" / "raw" / "train.csv").exists()

    # the data changed and only its stage was reproduced: the stages reading inside it are stale
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "stale", cwd=repo.dev)
    repo.set_param("seed: 7", "seed: 8")
    run(str(BIN / "dvc"), "repro", "prepare", cwd=repo.project, env=shape.dev_env)
    repo.dvc("push")
    head = repo.commit("new data, downstream not reproduced", "stale")
    proc, _results, checks = validate(repo, repo.clone("ci-stale", "stale"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    summary = checks["lock-vs-code"]["summary"]
    assert "data/raw/train.csv no longer matches the output of stage 'prepare'" in summary, summary
    assert "data/raw/test.csv no longer matches the output of stage 'prepare'" in summary, summary

    # a model retrained without re-evaluating: the folder holding it no longer matches
    repo.set_steps(7)
    run(str(BIN / "dvc"), "repro", "train", cwd=repo.project, env=shape.dev_env)
    repo.dvc("push")
    head = repo.commit("retrained, not re-evaluated", "stale")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, _results, checks = validate(repo, repo.clone("ci-stale-2", "stale"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    said = " ".join(checks["lock-vs-code"]["details"])
    assert "stage 'evaluate' would re-run because models no longer matches the output of stage 'train'" in said, said


def test_an_evaluation_reading_undeclared_upstream_data_is_pulled_that_output_and_told_to_declare_it(tmp_path):
    # evaluate opens data/test.csv, an output of prepare that it does not declare: CI pulls that
    # output alone (not the training data) after the first run fails, and says to declare it
    shape = next(s for s in SHAPES if s.name == "undeclared-eval-data")
    repo = make_repo(shape, tmp_path)
    base, head, checkout = open_pr(repo, "better", steps=50)
    proc, _results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    said = " ".join(checks["re-evaluation"]["details"])
    assert "the evaluation reads data/test.csv (outputs of other stages), which dvc.yaml does not list" in said, said
    assert "Add the files it reads to the evaluation stage's deps" in said
    assert "::warning file=dvc.yaml" in proc.stdout and "lockstep pulled data/test.csv" in proc.stdout
    assert not (checkout / "ml" / "data" / "train.csv").exists()  # only what the evaluation read


def test_an_evaluation_that_does_not_declare_the_model_is_given_it_and_stale_metrics_are_named(tmp_path):
    # evaluate opens models/model.json without listing it: CI pulls the model for it before the first
    # run (and the model-loading check sees it), and a PR whose plain `dvc repro` retrained the model
    # but did not re-run the evaluation fails the re-evaluation, told why and what to run
    shape = next(s for s in SHAPES if s.name == "unlinked-evaluation")
    repo = make_repo(shape, tmp_path)
    from lockstep import dvcrepo

    dvc_repo = dvcrepo.open_repo(repo.project)
    assert dvcrepo.evaluation_inputs(dvc_repo, ["evaluate"]) == ["data/test.csv"]
    assert dvcrepo.evaluation_inputs(dvc_repo, ["evaluate"], "models/model.json") == ["data/test.csv", "models/model.json"]
    assert dvcrepo.evaluation_inputs(dvc_repo, ["train"], "models/model.json") == ["data/train.csv"]  # its own output

    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "forgot", cwd=repo.dev)
    repo.set_steps(50)
    run(str(BIN / "dvc"), "repro", cwd=repo.project, env=shape.dev_env)  # retrains; evaluate is not stale to DVC
    repo.dvc("push")
    head = repo.commit("steps 50, metrics of the old model", "forgot")
    git("checkout", "-q", "main", cwd=repo.dev)
    checkout = repo.clone("ci-forgot", "forgot")
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-6000:]
    assert checks["lock-vs-code"]["status"] == "pass"  # DVC's own view: nothing is stale
    summary = checks["re-evaluation"]["summary"]
    assert "evaluate does not list models/model.json among its deps" in summary, summary
    assert "`dvc repro -f evaluate`" in summary, summary
    assert "lockstep pulled models/model.json" not in proc.stdout  # pulled with the evaluation's inputs, not after a failure
    assert not (checkout / "ml" / "data" / "train.csv").exists()  # only what the evaluation reads
    accuracy = next(row for row in results["metrics"] if row["name"] == "accuracy")
    assert accuracy["pr"] > accuracy["base"], results["metrics"]  # CI's number, the retrained model's


REGISTER_STAGE = """  register:
    cmd: python register.py
    deps: [register.py, models/model.json, scores.yaml]
    outs: [registered.json]
"""
REGISTER_CODE = '''"""Register the model when it scores well (the team's own registry step)."""
import json

import yaml

scores = yaml.safe_load(open("scores.yaml"))
if scores["auc"]["test"] > 0.5:
    # mlflow.register_model("runs:/.../model", "churn") in the team's code; here a record of the call
    json.dump({"registered": "models/model.json"}, open("registered.json", "w"))
'''


def test_a_stage_that_registers_the_model_is_skipped_by_rebuilds_as_init_writes(tmp_path):
    # a `register` stage after the evaluation calls MLflow's registry: init writes
    # `rebuild.skip-stages: [register]`, and a main rebuild runs the training and the evaluation,
    # not it (a second registration with the job's credentials), its lock entry as it was
    shape = next(s for s in SHAPES if s.name == "yaml-metrics")
    project = PROJECTS / shape.name
    staged = tmp_path / "project"
    shutil.copytree(project, staged)
    (staged / "dvc.yaml").write_text((staged / "dvc.yaml").read_text() + REGISTER_STAGE)
    (staged / "register.py").write_text(REGISTER_CODE)
    repo = make_repo(Shape("yaml-metrics", label="register"), tmp_path / "r", init=True, source=staged)
    from lockstep import adopt, config as configmod

    cfg = configmod.load(repo.project, required=True)
    assert cfg.rebuild_skip_stages == ("register",), cfg
    assert any("register call(s) MLflow's model registry (register_model)" in n for n in adopt.plan(repo.project).notes)
    lock_before = yaml_stage(repo, "register")

    repo.set_steps(30)
    merged = repo.commit("thirty steps, lock left to CI")
    checkout = repo.clone("ci-main")
    proc = lockstep("rebuild", "--working-directory", shape.folder, "--branch", "main", "--register", "false",
                    cwd=checkout, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    assert "not run: register (rebuild.skip-stages in " in proc.stdout, proc.stdout[-4000:]
    assert merged[:12] in git("log", "-1", "--format=%s", "main", cwd=repo.origin)
    assert yaml_stage(repo, "register") == lock_before  # as the developer's `dvc repro` left it
    assert yaml_stage(repo, "train") != yaml_stage(repo, "train", "HEAD~1")  # retrained
    assert not (checkout / "ml" / "registered.json").exists()  # never ran, nor pulled

    # skipping what the rebuild needs is refused before anything is pulled, pushed or committed
    git("pull", "-q", "--ff-only", "origin", "main", cwd=repo.dev)
    config = repo.project / "lockstep.yaml"
    config.write_text(config.read_text().replace("skip-stages: [register]", "skip-stages: [evaluate]"))
    repo.set_param("steps: 30", "steps: 40")
    head = repo.commit("skip the evaluation")
    objects = sorted(p.name for p in repo.remote.rglob("*") if p.is_file())
    proc = lockstep("rebuild", "--working-directory", shape.folder, "--branch", "main", "--register", "false",
                    cwd=repo.clone("ci-main-2"), env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_CONFIG, proc.stdout[-4000:]
    assert "rebuild.skip-stages skips evaluate, which a rebuild needs" in proc.stdout, proc.stdout[-4000:]
    assert git("rev-parse", "main", cwd=repo.origin) == head  # nothing committed
    assert sorted(p.name for p in repo.remote.rglob("*") if p.is_file()) == objects  # nothing pushed


def yaml_stage(repo: Repo, name: str, rev: str = "main") -> dict:
    import yaml

    return yaml.safe_load(git("show", f"{rev}:ml/dvc.lock", cwd=repo.origin))["stages"][name]


def test_a_pickle_the_evaluation_reads_undeclared_is_scanned_before_the_evaluation_runs_again(tmp_path):
    # the evaluation loads data/scaler.pkl, an output of prepare it does not declare: CI pulls it
    # after the first run fails to open it, which the Model loading check never saw. A PR that
    # commits (data only, no code) a scaler.pkl that runs a command when loaded fails, unloaded
    shape = next(s for s in SHAPES if s.name == "undeclared-eval-data")
    staged = tmp_path / "project"
    shutil.copytree(PROJECTS / shape.name, staged)
    dvc_yaml = staged / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("outs: [data/train.csv, data/test.csv]",
                                                     "outs: [data/train.csv, data/test.csv, data/scaler.pkl]"))
    prepare = staged / "src" / "prepare.py"
    prepare.write_text(prepare.read_text() + 'import pickle\npickle.dump({"scale": 1.0}, open("data/scaler.pkl", "wb"))\n')
    evaluate = staged / "src" / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace(
        "import json\n", 'import json\nimport pickle\n\nscale = pickle.load(open("data/scaler.pkl", "rb"))["scale"]\n', 1))
    repo = make_repo(shape, tmp_path / "r", source=staged)

    canary = tmp_path / "scaler-ran-code"
    base = git("rev-parse", "HEAD", cwd=repo.dev)
    git("checkout", "-q", "-b", "scaler", cwd=repo.dev)
    (repo.project / "data" / "scaler.pkl").write_bytes(
        b"cposix\nsystem\n(V" + f"touch {canary}".encode() + b"\ntR.")  # pickle protocol 0: os.system(...)
    repo.dvc("commit", "-q", "-f")
    repo.dvc("push")
    head = repo.commit("a new scaler", "scaler")
    git("checkout", "-q", "main", cwd=repo.dev)
    proc, _results, checks = validate(repo, repo.clone("ci-scaler", "scaler"), base, head)
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-4000:]
    summary = checks["re-evaluation"]["summary"]
    assert checks["re-evaluation"]["status"] == "fail", checks["re-evaluation"]
    assert "loading data/scaler.pkl: posix.system would run code" in summary, summary
    assert "without declaring it in dvc.yaml" in summary
    assert not canary.exists()
