"""lockstep benchmarks: prints a table and writes benchmarks/results/latest.json. Not a test.

    .venv/bin/python benchmarks/run.py [--only NAME ...] [--full]

Every number that carries a target is a ratio against a baseline measured in the same run on the
same machine:
  verify-scaling  object-level remote verification vs `dvc status -c` on the same data
                  (directory outputs of 100 / 1,000 / 10,000 files; 10 MB / 100 MB, 1 GB with --full)
  overhead        lockstep's own start-up and work beyond the interpreter (`python -c pass`)
  rebuild-bytes   bytes a main rebuild downloads from and uploads to S3 vs `dvc pull` of everything
  setup           installing lockstep's environment with uv, cold (empty cache) and warm
  pr-feedback     workflow start to comment posted, lockstep's pr-validate.yml vs the hand-written
                  uv recipe (setup-uv with its cache, uv pip install dvc[s3] + requirements, dvc pull,
                  dvc repro, dvc metrics diff --md, one comment call) and the older pip recipe, all
                  under act in one run, cold (empty caches) and warm (the caches of the cold run),
                  with a phase breakdown from act's per-step timestamps, and lockstep's workflow once
                  more "upgraded" (the warm store with its bytecode archive under another key, as
                  after a lockstep upgrade or a requirements change); `--against REV` also runs
                  lockstep's workflow from commit REV in turn with this tree's (ratios pair by pair),
                  `--workflows` picks which of the three run
  main-rebuild    job time of lockstep's main-rebuild.yml vs the uv rebuild recipe (pull, repro -f,
                  push, commit), both under act, cold and warm

pr-feedback and main-rebuild take `--pypi loopback`: the jobs' uv installs from a caching proxy of
PyPI on 127.0.0.1 (benchmarks/pypi_cache.py) that an untimed run of each workflow fills first, so a
download costs the same on both sides and this machine's network (2 to 15 s for the same 100 MB)
stays out of the ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from lockstep import scaffold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test bed's servers: moto, the fault proxy, act, the GitHub API
import servers  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"


# where the jobs' uv installs from: "live" (PyPI, through this machine's network) or "loopback" (a
# caching proxy of PyPI on 127.0.0.1, benchmarks/pypi_cache.py, filled by an untimed warm-up run)
PYPI = {"mode": "live"}
PYPI_CACHE = RESULTS / "pypi-cache"  # kept across runs (benchmarks/results/ is not committed)


@contextmanager
def pypi_index():
    """The jobs' environment for the chosen PyPI: {} live; loopback: `UV_DEFAULT_INDEX` at the
    caching proxy, which is yielded as the second item (None live)."""
    if PYPI["mode"] != "loopback":
        yield {}, None
        return
    from pypi_cache import PyPICache

    cache = PyPICache(PYPI_CACHE)
    try:
        yield {"UV_DEFAULT_INDEX": cache.url}, cache
    finally:
        cache.close()


def warm_up(index, runs: dict) -> None:
    """With PyPI on loopback (`index`), one untimed run of each workflow (`runs`: name -> a call that
    runs it), so that the cache holds every package either side installs; then count afresh."""
    if index is None:
        return
    for workflow, run_it in runs.items():
        result = run_it()
        if result.returncode != 0:
            raise RuntimeError(f"{workflow} warm-up failed:\n{result.log[-6000:]}")
    print(f"  PyPI on loopback: {index.fetched} download(s) from PyPI in the warm-up", flush=True)
    index.fetched = 0


def settle(seconds: float = 3.0) -> None:
    """Before each act run, on both sides: flush what the previous run wrote (two environments are
    about 500 MB) and let the disk go quiet, so that a run does not pay for its predecessor."""
    os.sync()
    time.sleep(seconds)


def timed(argv, cwd, env=None, repeat=3) -> float:
    """Median wall time of a command, in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"{argv} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return statistics.median(samples)


# --- S3 with a byte counter ---------------------------------------------------------------------


@contextmanager
def s3(workdir: Path):
    server = servers.start_moto(workdir)
    env = {**servers.AWS_ENV, "AWS_ENDPOINT_URL": server.url}
    try:
        yield server, env
    finally:
        server.stop()


def make_bucket(env, name):
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket=name)


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


# --- 1. remote verification scaling -------------------------------------------------------------


def dir_project(base: Path, env: dict, bucket: str, files: int, total_bytes: int) -> Path:
    """A DVC project with one directory output of `files` files, pushed to `bucket`."""
    repo = base / f"p-{files}-{total_bytes}"
    data = repo / "data"
    data.mkdir(parents=True)
    git("init", "-q", cwd=repo)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(BIN / "dvc"), "remote", "add", "-d", "s", f"s3://{bucket}/dvc"], cwd=repo, check=True)
    size = max(1, total_bytes // files)
    for index in range(files):
        (data / f"f{index:05d}.bin").write_bytes(index.to_bytes(4, "little") + os.urandom(max(0, size - 4)))
    (repo / "dvc.yaml").write_text("stages:\n  produce:\n    cmd: 'true'\n    outs:\n      - data\n")
    run_env = {**os.environ, **env}
    subprocess.run([str(BIN / "dvc"), "commit", "-f", "-q"], cwd=repo, check=True, env=run_env)
    subprocess.run([str(BIN / "dvc"), "push", "-q", "-j", "16"], cwd=repo, check=True, env=run_env)
    return repo


LIST_FLOOR = """
import sys, boto3
pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix="dvc/files/md5/")
print(sum(len(page.get("Contents", [])) for page in pages))
"""


def bench_verify_scaling(full: bool) -> list[dict]:
    rows = []
    cases = [(100, 1_000_000), (1_000, 1_000_000), (10_000, 10_000_000), (10, 10_000_000), (10, 100_000_000)]
    if full:
        cases.append((10, 1_000_000_000))
    with tempfile.TemporaryDirectory() as tmp, s3(Path(tmp)) as (_server, env):
        for files, total in cases:
            bucket = f"verify-{files}-{total}"
            make_bucket(env, bucket)
            repo = dir_project(Path(tmp), env, bucket, files, total)
            lockstep_s = timed([str(BIN / "lockstep"), "verify-remote", "--working-directory", "."], repo, env)
            status_s = timed([str(BIN / "dvc"), "status", "-c"], repo, env)
            # the floor of any complete check: one process that only lists the remote's objects
            floor_s = timed([sys.executable, "-c", LIST_FLOOR, bucket], repo, env)
            rows.append({"files": files, "bytes": total, "lockstep_s": round(lockstep_s, 2),
                         "dvc_status_c_s": round(status_s, 2), "list_floor_s": round(floor_s, 2),
                         "ratio_vs_status": round(lockstep_s / status_s, 2), "ratio_vs_floor": round(lockstep_s / floor_s, 2)})
            print(f"  verify {files:>6} files {total / 1e6:>6.0f} MB: lockstep {lockstep_s:6.2f}s  dvc status -c {status_s:6.2f}s  "
                  f"list floor {floor_s:6.2f}s  ratio vs status {lockstep_s / status_s:.2f}, vs floor {lockstep_s / floor_s:.2f}")
    return rows


# --- 2. overhead --------------------------------------------------------------------------------


def bench_overhead() -> dict:
    python = timed([sys.executable, "-c", "pass"], ROOT, repeat=5)
    version = timed([str(BIN / "lockstep"), "--version"], ROOT, repeat=5)
    imports = timed([sys.executable, "-c", "import lockstep.validate, lockstep.rebuild, lockstep.dvcrepo"], ROOT, repeat=5)
    with tempfile.TemporaryDirectory() as tmp:
        scaffold.copy_example(Path(tmp) / "p")
        config = timed([str(BIN / "lockstep"), "check-config", "--working-directory", "p"], Path(tmp), repeat=5)
    row = {"python_s": round(python, 3), "lockstep_version_s": round(version, 3), "import_modules_s": round(imports, 3),
           "check_config_s": round(config, 3), "beyond_interpreter_s": round(version - python, 3)}
    print(f"  overhead: python {python:.3f}s, lockstep --version {version:.3f}s, imports {imports:.3f}s, check-config {config:.3f}s")
    return row


# --- 3. bytes moved by a rebuild ----------------------------------------------------------------


IDENTITY = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}


def trained_repo(base: Path, env: dict, bucket: str) -> tuple[scaffold.Repo, dict]:
    """A consumer repository (lockstep.scaffold): the example project trained, pushed to `bucket`
    and committed on main. Returns the repository and the environment for commands in it."""
    repo = scaffold.Repo.create(base, env={**env, **IDENTITY})
    scaffold.first_model(repo, remote=f"s3://{bucket}/dvc")
    return repo, scaffold.subprocess_env(repo.env, mlflow=False)


def bench_rebuild_bytes() -> dict:
    with tempfile.TemporaryDirectory() as tmp, s3(Path(tmp)) as (server, env):
        make_bucket(env, "rebuild-bytes")
        base = Path(tmp)
        repo, run_env = trained_repo(base, env, "rebuild-bytes")
        repo.set_param("max_depth: 6", "max_depth: 5")
        repo.commit("m")  # a param change merged without its lock: the rebuild retrains
        proxy = FaultProxy(server.url, lambda method, path: None)  # counts bytes, injects nothing
        try:
            counted = {**run_env, "AWS_ENDPOINT_URL": proxy.url}
            everything = repo.clone("everything")
            subprocess.run([str(BIN / "dvc"), "pull", "-q"], cwd=everything / "example-project", env=counted, capture_output=True)
            pull_all = proxy.down
            proxy.reset()
            ci = repo.clone("ci")
            proc = subprocess.run([str(BIN / "lockstep"), "rebuild", "--working-directory", "example-project", "--register", "false"],
                                  cwd=ci, env=counted, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(proc.stdout[-3000:])
            model_bytes = (ci / "example-project" / "models" / "model.pkl").stat().st_size
            row = {"rebuild_download_bytes": proxy.down, "pull_everything_bytes": pull_all,
                   "rebuild_upload_bytes": proxy.up, "new_model_bytes": model_bytes,
                   "download_ratio": round(proxy.down / pull_all, 3) if pull_all else None}
        finally:
            proxy.close()
    print(f"  rebuild: downloaded {row['rebuild_download_bytes']} B vs {row['pull_everything_bytes']} B for dvc pull of everything; "
          f"uploaded {row['rebuild_upload_bytes']} B (new model {row['new_model_bytes']} B)")
    return row


# --- 4. setup -----------------------------------------------------------------------------------


def bench_setup() -> dict:
    """Installing lockstep's environment with uv as the setup action does (its dependencies from
    constraints.txt with `uv pip sync`, nothing resolved; lockstep itself runs from its source),
    against the same install resolved from pyproject.toml under the constraints (what it did
    before): cold (empty uv cache) and warm, each in a fresh venv, in turn."""
    uv = shutil.which("uv")
    commands = {
        "sync": ["pip", "sync", "-q", str(ROOT / "constraints.txt")],
        "resolve": ["pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), "-r", str(ROOT / "pyproject.toml")],
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for how, command in commands.items():
            cache = Path(tmp) / f"uv-cache-{how}"
            for label in ("cold", "warm"):
                venv = Path(tmp) / f"venv-{label}-{how}"
                subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
                start = time.perf_counter()
                subprocess.run([uv, *command[:2], "--python", str(venv / "bin" / "python"), *command[2:]],
                               check=True, env={**os.environ, "UV_CACHE_DIR": str(cache)})
                results[f"{label}_{how}_s"] = round(time.perf_counter() - start, 1)
    print(f"  setup (lockstep + dvc[s3] + mlflow-skinny with uv): sync cold {results['cold_sync_s']}s, warm {results['warm_sync_s']}s; "
          f"resolved cold {results['cold_resolve_s']}s, warm {results['warm_resolve_s']}s")
    return results


WORKFLOWS = {  # file in the consumer repository: label
    "ml-pr-uv.yml": "uv recipe",
    "ml-pr-pip.yml": "pip recipe",
    "ml-pr.yml": "lockstep pr-validate.yml",
}


def consumer_repo(base: Path, env: dict, bucket: str) -> tuple[Path, str, str]:
    """A consumer repository (lockstep.scaffold): the example trained on main with the PR
    workflows, and a PR branch (`feature`, 150 trees) trained and pushed; the clone is left on it."""
    repo, _run_env = trained_repo(base, env, bucket)
    workflows = repo.dev / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "ml-pr.yml").write_text((scaffold.example_project() / "workflows/ml-pr.yml").read_text().replace("OWNER/lockstep/", "lockstep-dev/lockstep/"))
    for baseline in ("ml-pr-uv.yml", "ml-pr-pip.yml"):
        shutil.copy(ROOT / "benchmarks/baseline" / baseline, workflows)
    repo.commit("main")
    base_sha, head_sha = scaffold.open_pr(repo, "feature", "n_estimators: 100", "n_estimators: 150", "pr")
    return repo.dev, base_sha, head_sha


# act with `--json`, each line prefixed with the wall time it arrived (act's own `time` field has
# one-second resolution): the phases below are computed from these timestamps
# It is also the job's subreaper (prctl PR_SET_CHILD_SUBREAPER), so the background installs that
# leave their step's process group still count: the last line gives the CPU seconds of every process
# the job started (servers on loopback are not the job's and do not count).
TIMED_ACT = """#!{python}
import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
proc = subprocess.Popen([{act!r}, "--json", *sys.argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for line in proc.stdout:
    sys.stdout.write(f"{{time.time():.3f}} {{line}}")
    sys.stdout.flush()
code = proc.wait()
while True:  # orphans handed to this process: wait for them, so their CPU time is counted
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(f"{{time.time():.3f}} " + json.dumps({{"lockstep_bench_cpu_s": usage.ru_utime + usage.ru_stime}}) + "\\n")
sys.exit(code)
"""

PHASES = ("job set-up, checkout", "cache restore", "install", "checks before evaluation", "pull", "evaluation",
          "compare with base, gates", "MLflow", "report + comment", "cache save")


def act_events(log: str) -> list[dict]:
    events = []
    for line in log.splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            record = json.loads(rest)
            record["t"] = float(stamp)
        except ValueError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events


def act_steps(events: list[dict]) -> list[dict]:
    """The steps act ran that do work (the innermost of composite actions; not act's own set-up,
    Pre and clean-up steps): stage (Main/Post), name, the name of the workflow step it belongs to,
    start and end (wall time)."""
    steps: dict[tuple, dict] = {}
    for event in events:
        msg = event.get("msg", "")
        key = (event.get("stage", ""), tuple(event.get("stepID") or event.get("stepid") or ()))
        if msg.startswith("⭐ Run "):
            # `step` names the workflow step; the message names the step itself (inside a composite action)
            name = msg.removeprefix("⭐ Run ").removeprefix(f"{key[0]} ").strip()
            steps[key] = {"stage": key[0], "id": key[1], "name": name, "start": event["t"], "end": event["t"]}
        elif "stepResult" in event and key in steps:
            steps[key]["end"] = event["t"]
    work = []
    for (stage, ids), step in steps.items():
        # act numbers a composite action's post steps as if nested in one another: there, only the
        # composite itself (a one-part id) wraps the others
        wraps = any(other[0] == stage and len(other[1]) > len(ids) and other[1][:len(ids)] == ids for other in steps)
        if stage not in ("Main", "Post") or (wraps and (stage == "Main" or len(ids) == 1)):
            continue
        top = steps.get((stage, ids[:1]), step)
        work.append({**step, "top": top["name"]})
    return sorted(work, key=lambda s: s["start"])


# lockstep's own log groups (scripts/lockstep/validate.py, gha.group) that open each phase
LOCKSTEP_GROUPS = (
    ("which lockstep.yaml judges this PR", "checks before evaluation"),
    ("pull what evaluation needs", "pull"),
    ("what loading the PR's model runs", "checks before evaluation"),
    ("did this PR change its evaluation?", "compare with base, gates"),  # and the base's evaluation, when it changed
    ("project tests", "evaluation"),
    ("re-evaluate in CI", "evaluation"),
    ("compare with the base branch", "compare with base, gates"),
    ("MLflow", "MLflow"),
)


def phases(workflow: str, log: str) -> dict:
    """Seconds per phase, from act's per-step timestamps (and, inside `lockstep validate`, from the
    timestamps of the log groups it opens). Also time to the comment and to the end of the job."""
    events = act_events(log)
    steps = act_steps(events)
    if not steps:
        raise RuntimeError(f"{workflow}: no step found in act's output")
    job_start = min(e["t"] for e in events if e.get("msg", "").startswith("⭐ Run Set up job"))
    out = dict.fromkeys(PHASES, 0.0)

    def add(phase: str, seconds: float) -> None:
        out[phase] += max(0.0, seconds)

    comment_end = None
    for step in steps:
        name, top, seconds = step["name"], step["top"], step["end"] - step["start"]
        if "actions/cache@" in name or "setup-uv@" in name:
            add("cache save" if step["stage"] == "Post" else "cache restore", seconds)
        elif "Keep the bytecode" in name:  # pr-validate.yml's last step, after the comment: what the cache then saves
            add("cache save", seconds)
        elif step["stage"] == "Post":
            add("report + comment", seconds)
        elif name.endswith("lockstep validate"):  # the action runs `exec lockstep validate`
            cuts = [(step["start"], "checks before evaluation")]
            for event in events:
                if step["start"] <= event["t"] <= step["end"] and event.get("command") == "group":
                    for prefix, phase in LOCKSTEP_GROUPS:
                        if event.get("arg", "").startswith(prefix):
                            cuts.append((event["t"], phase))
            cuts.append((step["end"], ""))
            for (at, phase), (until, _) in zip(cuts, cuts[1:], strict=False):
                add(phase, until - at)
        elif "/actions/setup@" in top:
            add("install", seconds)
        elif "/actions/comment@" in top or "upload-artifact@" in top:
            add("report + comment", seconds)
            if "/actions/comment@" in top:
                comment_end = step["end"]
        elif workflow.split("@")[0] == "ml-pr.yml":
            add("job set-up, checkout", seconds)
        else:
            phase = {"install": "install", "pull": "pull", "reproduce": "evaluation", "diff": "compare with base, gates",
                     "comment": "report + comment", "reproduce and diff": "evaluation"}.get(name, "job set-up, checkout")
            add(phase, seconds)
            if name == "comment":
                comment_end = step["end"]
    job_end = max(step["end"] for step in steps)
    out = {phase: round(seconds, 1) for phase, seconds in out.items()}
    out["to comment"] = round((comment_end or job_end) - job_start, 1)
    out["job"] = round(job_end - job_start, 1)  # to the end of the last post step (act's own clean-up excluded)
    cpu = [e["lockstep_bench_cpu_s"] for e in events if "lockstep_bench_cpu_s" in e]
    if cpu:  # every process of the job, act's own included (the same on both sides)
        out["cpu_s"] = round(cpu[-1], 1)
    out["steps"] = [{"stage": s["stage"], "name": s["name"][:60], "top": s["top"][:60], "s": round(s["end"] - s["start"], 2)} for s in steps]
    return out


def bench_pr_feedback(repeat: int = 3, pip_repeat: int = 1, against: str = "", only: tuple[str, ...] = ()) -> dict:
    """Cold (empty cache store, empty uv cache) then warm (the caches the cold run saved) for each
    workflow, `repeat` times (the pip recipe `pip_repeat` times); medians. `against`: a commit of
    lockstep whose pr-validate.yml also runs, in turn with this tree's (before and after a change,
    on the same machine in the same minutes); `only`: the workflows to run (keys of WORKFLOWS)."""
    from actrunner import Act, pr_payload
    from github_api import TOKEN, GitHubAPI

    chosen = [wf for wf in WORKFLOWS if not only or wf in only]
    with tempfile.TemporaryDirectory() as tmp, s3(Path(tmp)) as (server, env), pypi_index() as (index_env, index):
        base = Path(tmp)
        before = f"ml-pr.yml@{against}" if against else ""
        if against:  # lockstep as it was at that commit, beside this tree's, right after it in every round
            checkout = base / "against"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(checkout), against], cwd=ROOT, check=True)
            chosen.insert(chosen.index("ml-pr.yml") + 1 if "ml-pr.yml" in chosen else len(chosen), before)
        samples: dict[str, dict[str, list[dict]]] = {wf: {"cold": [], "warm": [], "upgraded": []} for wf in chosen}
        make_bucket(env, "pr-feedback")
        make_bucket(env, "mlflow")
        mlflow = servers.start_mlflow(base, server.url, "mlflow")
        dev, base_sha, head_sha = consumer_repo(base, env, "pr-feedback")
        api = GitHubAPI()
        proxy = FaultProxy(server.url, lambda method, path: None)  # counts the bytes the jobs move to and from S3
        act = Act(base / "act", shared_uv_cache=False)  # setup-uv restores and saves its own cache, as on GitHub
        wrapper = base / "act-timed"
        wrapper.write_text(TIMED_ACT.format(python=sys.executable, act=act.binary))
        wrapper.chmod(0o755)
        act.binary = str(wrapper)
        acts = dict.fromkeys(chosen, act)
        if against:
            acts[before] = Act(base / "act-against", shared_uv_cache=False, library=checkout)
            acts[before].binary = str(wrapper)
        payload = pr_payload(3, base_sha, head_sha)
        common = {**env, **index_env, "AWS_ENDPOINT_URL": proxy.url, "GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "octo/ml",
                  "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}
        secrets = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "GITHUB_TOKEN": TOKEN,
                   "MLFLOW_TRACKING_URI": mlflow.url}
        # GitHub's runners do not set PYTHONDONTWRITEBYTECODE; this machine does: jobs run without it
        saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            warm_up(index, {workflow: functools.partial(
                acts[workflow].run, dev, "pull_request", workflow.split("@")[0], payload=payload, secrets=secrets,
                env={**common, "LOCKSTEP_TEST_CACHE": str(base / f"warm-up-{workflow}")}, timeout=1800) for workflow in chosen})
            for rep in range(repeat):
                for workflow in chosen:
                    if workflow == "ml-pr-pip.yml" and rep >= pip_repeat:
                        continue
                    cache = base / f"cache-{workflow}-{rep}"  # empty: the cold run fills it, the warm run reuses it
                    labels = ("cold", "warm", "upgraded") if workflow.startswith("ml-pr.yml") else ("cold", "warm")
                    for label in labels:
                        if label == "upgraded":  # a lockstep upgrade: the bytecode cache's key changed, uv's did not
                            cache = upgraded_store(cache, base / f"cache-{workflow}-{rep}-upgraded")
                        sent = len(api.requests)
                        proxy.reset()
                        start = time.perf_counter()
                        settle()
                        result = acts[workflow].run(dev, "pull_request", workflow.split("@")[0], payload=payload, secrets=secrets,
                                                    env={**common, "LOCKSTEP_TEST_CACHE": str(cache)}, timeout=1800)
                        elapsed = time.perf_counter() - start
                        posted = any(r.method in ("POST", "PATCH") for r in api.requests[sent:])
                        if result.returncode != 0 or not posted:
                            RESULTS.mkdir(parents=True, exist_ok=True)
                            (RESULTS / f"act-{workflow}-{label}-{rep}-failed.log").write_text(result.log)
                            raise RuntimeError(f"{workflow} {label} failed (whole log in benchmarks/results/):\n{result.log[-6000:]}")
                        row = phases(workflow, result.log)
                        row.update(act_s=round(elapsed, 1), s3_down_bytes=proxy.down, s3_up_bytes=proxy.up,
                                   cache_store_bytes=sum(p.stat().st_size for p in cache.glob("*") if p.is_file()))
                        samples[workflow][label].append(row)
                        RESULTS.mkdir(parents=True, exist_ok=True)
                        (RESULTS / f"act-{workflow}-{label}-{rep}.log").write_text(result.log)
                        print(f"  [{rep + 1}/{repeat}] {label_of(workflow):<26} {label}: {row['to comment']:6.1f}s to the comment, "
                              f"job {row['job']:.1f}s, S3 down {proxy.down:,} B, cache store {row['cache_store_bytes'] / 1e6:.1f} MB", flush=True)
        finally:
            if saved is not None:
                os.environ["PYTHONDONTWRITEBYTECODE"] = saved
            proxy.close()
            api.close()
            mlflow.stop()
            if against:
                subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, check=False)
        upstream = index.fetched if index is not None else None
    results: dict = {"repeat": repeat, "pip_repeat": pip_repeat, "against": against, "pypi": PYPI["mode"],
                     "pypi_upstream_fetches_timed": upstream, "medians": {}, "samples": samples}
    if upstream:
        print(f"  note: {upstream} file(s) came from PyPI during the timed runs (not in the warm-up)", flush=True)
    for workflow, labels in samples.items():
        for label, rows in labels.items():
            if not rows:
                continue
            keys = [k for k in rows[0] if k != "steps"]
            results["medians"][f"{workflow}:{label}"] = {k: round(statistics.median(r[k] for r in rows), 1) for k in keys}
    med = results["medians"]
    for label in ("cold", "warm", "upgraded"):
        if f"ml-pr.yml:{label}" not in med:
            continue
        lock = med[f"ml-pr.yml:{label}"]["to comment"]
        for baseline in ("ml-pr-uv.yml", "ml-pr-pip.yml"):
            if f"{baseline}:{label}" in med:
                results[f"ratio_{label}_vs_{baseline.removesuffix('.yml').removeprefix('ml-pr-')}"] = round(lock / med[f"{baseline}:{label}"]["to comment"], 2)
        if against:  # pair by pair: each of this tree's runs against the one of `against` right after it
            pairs = [a["to comment"] / b["to comment"] for a, b in zip(samples["ml-pr.yml"][label], samples[before][label], strict=True)]
            results[f"ratio_{label}_vs_{against}"] = round(statistics.median(pairs), 2)
    print_phase_table(med, chosen)
    print("  ratios (lockstep / recipe, time to comment): " + ", ".join(f"{k} {v}" for k, v in results.items() if k.startswith("ratio")))
    return results


def upgraded_store(store: Path, copy: Path) -> Path:
    """A copy of a warm cache store in which the bytecode archive is filed under another key of the
    same prefix, as after a lockstep upgrade (its source is part of the key) or a requirements
    change: the exact key misses; uv's cache (keyed on the project's requirements) still hits."""
    shutil.copytree(store, copy)
    for archive in copy.glob("lockstep-bytecode-*"):
        name, dot, ext = archive.name.partition(".")
        archive.rename(archive.with_name(f"{name[:-32]}{'0' * 32}{dot}{ext}"))
    return copy


def label_of(workflow: str) -> str:
    """`ml-pr.yml@REV` is lockstep's workflow from commit REV (`--against`)."""
    name, _, rev = workflow.partition("@")
    return WORKFLOWS[name] + (f" @{rev}" if rev else "")


def print_phase_table(med: dict, workflows: list[str]) -> None:
    columns = [c for c in (f"{wf}:{label}" for label in ("cold", "warm", "upgraded") for wf in workflows) if c in med]
    heads = [f"{label_of(c.split(':')[0]).split()[0]}{'@' + c.split('@')[1].split(':')[0] if '@' in c else ''} {c.split(':')[1]}" for c in columns]
    print("  " + f"{'phase (median s)':<28}" + "".join(f"{h:>16}" for h in heads))
    for phase in (*PHASES, "to comment", "job", "cpu_s", "s3_down_bytes", "cache_store_bytes"):
        print("  " + f"{phase:<28}" + "".join(f"{med[c].get(phase, 0):>16,}" if "bytes" in phase else f"{med[c].get(phase, 0.0):>16.1f}" for c in columns))


def bench_main_rebuild(repeat: int = 1) -> dict:
    """Job time of lockstep's main-rebuild.yml vs the uv rebuild recipe (pull, repro -f, push,
    commit), after a merge that changed params without retraining; origin's main is reset to the
    merge before every run, so each run retrains and commits. Cold then warm caches, `repeat` times."""
    from actrunner import Act, push_payload
    from github_api import TOKEN, GitHubAPI

    workflows = {"main-uv.yml": "uv rebuild recipe", "ml-main.yml": "lockstep main-rebuild.yml"}
    samples: dict[str, dict[str, list[dict]]] = {wf: {"cold": [], "warm": []} for wf in workflows}
    with tempfile.TemporaryDirectory() as tmp, s3(Path(tmp)) as (server, env), pypi_index() as (index_env, index):
        base = Path(tmp)
        make_bucket(env, "main-rebuild")
        make_bucket(env, "mlflow")
        mlflow = servers.start_mlflow(base, server.url, "mlflow")
        repo, _run_env = trained_repo(base, env, "main-rebuild")
        origin, dev = repo.origin, repo.dev
        target = dev / ".github" / "workflows"
        target.mkdir(parents=True)
        consumer_workflow = (scaffold.example_project() / "workflows/ml-main.yml").read_text()
        (target / "ml-main.yml").write_text(consumer_workflow.replace("OWNER/lockstep/", "lockstep-dev/lockstep/"))
        shutil.copy(ROOT / "benchmarks/baseline/main-uv.yml", target)
        repo.commit("main")
        repo.set_param("max_depth: 6", "max_depth: 5")
        merged = repo.commit("Merge pull request #8")
        api = GitHubAPI()
        proxy = FaultProxy(server.url, lambda method, path: None)
        act = Act(base / "act", shared_uv_cache=False)  # setup-uv restores and saves its own cache, as on GitHub
        wrapper = base / "act-timed"
        wrapper.write_text(TIMED_ACT.format(python=sys.executable, act=act.binary))
        wrapper.chmod(0o755)
        act.binary = str(wrapper)
        common = {**env, **index_env, "AWS_ENDPOINT_URL": proxy.url, "GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "octo/ml",
                  "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false", "LOCKSTEP_TEST_ORIGIN": f"file://{origin}"}
        secrets = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "GITHUB_TOKEN": TOKEN,
                   "MLFLOW_TRACKING_URI": mlflow.url}
        saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            def rebuild_from_the_merge(workflow: str):
                subprocess.run(["git", "push", "-q", "-f", "origin", f"{merged}:main"], cwd=dev, check=True, capture_output=True)
                return act.run(dev, "push", workflow, payload=push_payload(merged), secrets=secrets,
                               env={**common, "LOCKSTEP_TEST_CACHE": str(base / f"warm-up-{workflow}")}, timeout=1800)

            warm_up(index, {workflow: functools.partial(rebuild_from_the_merge, workflow) for workflow in workflows})
            for rep in range(repeat):
                for workflow in workflows:
                    cache = base / f"cache-{workflow}-{rep}"
                    for label in ("cold", "warm"):
                        subprocess.run(["git", "push", "-q", "-f", "origin", f"{merged}:main"], cwd=dev, check=True, capture_output=True)
                        proxy.reset()
                        settle()
                        result = act.run(dev, "push", workflow, payload=push_payload(merged), secrets=secrets,
                                         env={**common, "LOCKSTEP_TEST_CACHE": str(cache)}, timeout=1800)
                        head = subprocess.run(["git", "log", "-1", "--format=%s", "main"], cwd=origin, capture_output=True, text=True).stdout
                        if result.returncode != 0 or "[skip ci]" not in head:
                            raise RuntimeError(f"{workflow} {label} failed ({head!r}):\n{result.log[-6000:]}")
                        steps = act_steps(act_events(result.log))
                        start = min(e["t"] for e in act_events(result.log) if e.get("msg", "").startswith("⭐ Run Set up job"))
                        def total(stage, test, steps=steps):
                            return round(sum(st["end"] - st["start"] for st in steps if st["stage"] == stage and test(st)), 1)

                        def cached(st):
                            return "actions/cache@" in st["name"] or "setup-uv@" in st["name"]

                        def installing(st):
                            return st["name"] == "install" or ("/actions/setup@" in st["top"] and "@" not in st["name"])

                        row = {"job": round(max(st["end"] for st in steps) - start, 1), "cache restore": total("Main", cached),
                               "cache save": total("Post", cached), "install": total("Main", installing),
                               "s3_down_bytes": proxy.down, "s3_up_bytes": proxy.up}
                        row["to push (job - cache save)"] = round(row["job"] - row["cache save"], 1)
                        samples[workflow][label].append(row)
                        RESULTS.mkdir(parents=True, exist_ok=True)
                        (RESULTS / f"act-{workflow}-{label}-{rep}.log").write_text(result.log)
                        print(f"  [{rep + 1}/{repeat}] {workflows[workflow]:<26} {label}: job {row['job']:.1f}s (cache restore {row['cache restore']}s, "
                              f"install {row['install']}s, cache save {row['cache save']}s), S3 down {proxy.down:,} B up {proxy.up:,} B", flush=True)
        finally:
            if saved is not None:
                os.environ["PYTHONDONTWRITEBYTECODE"] = saved
            proxy.close()
            api.close()
            mlflow.stop()
        upstream = index.fetched if index is not None else None
    results: dict = {"repeat": repeat, "pypi": PYPI["mode"], "pypi_upstream_fetches_timed": upstream, "medians": {}, "samples": samples}
    for workflow, labels in samples.items():
        for label, rows in labels.items():
            results["medians"][f"{workflow}:{label}"] = {k: round(statistics.median(r[k] for r in rows), 1) for k in rows[0]}
    for label in ("cold", "warm"):
        results[f"ratio_{label}"] = round(results["medians"][f"ml-main.yml:{label}"]["job"] / results["medians"][f"main-uv.yml:{label}"]["job"], 2)
    print(f"  lockstep / uv rebuild recipe (job time): cold {results['ratio_cold']}, warm {results['ratio_warm']}")
    return results


BENCHES = {"verify-scaling": None, "overhead": bench_overhead, "rebuild-bytes": bench_rebuild_bytes, "setup": bench_setup,
           "pr-feedback": bench_pr_feedback, "main-rebuild": bench_main_rebuild}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=list(BENCHES))
    parser.add_argument("--full", action="store_true", help="include the 1 GB case")
    parser.add_argument("--repeat", type=int, default=3, help="pr-feedback: cold+warm pairs per workflow (medians)")
    parser.add_argument("--pip-repeat", type=int, default=1, help="pr-feedback: pairs for the (slow) pip recipe")
    parser.add_argument("--against", default="", metavar="REV",
                        help="pr-feedback: also run lockstep's workflow as it was at this commit, in turn with this tree's (ratios pair by pair)")
    parser.add_argument("--workflows", nargs="*", choices=list(WORKFLOWS), default=[], help="pr-feedback: run only these")
    parser.add_argument("--main-repeat", type=int, default=1, help="main-rebuild: cold+warm pairs per workflow")
    parser.add_argument("--pypi", choices=["live", "loopback"], default="live",
                        help="pr-feedback, main-rebuild: install from PyPI itself, or from a caching proxy of it on "
                             "127.0.0.1 filled by an untimed warm-up (downloads then cost the same on both sides, at loopback speed)")
    args = parser.parse_args()
    PYPI["mode"] = args.pypi
    chosen = args.only or list(BENCHES)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]), "load_before": os.getloadavg()}
    for name in chosen:
        print(f"== {name}", flush=True)
        if name == "verify-scaling":
            report[name] = bench_verify_scaling(args.full)
        elif name == "pr-feedback":
            report[name] = bench_pr_feedback(args.repeat, args.pip_repeat, args.against, tuple(args.workflows))
        elif name == "main-rebuild":
            report[name] = bench_main_rebuild(args.main_repeat)
        else:
            report[name] = BENCHES[name]()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
