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
                  recipe (pip install dvc[s3] mlflow, dvc pull, dvc repro, dvc metrics diff, curl),
                  both under act, cold and warm
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import servers  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"


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
        shutil.copytree(ROOT / "example-project", Path(tmp) / "p")
        config = timed([str(BIN / "lockstep"), "check-config", "--working-directory", "p"], Path(tmp), repeat=5)
    row = {"python_s": round(python, 3), "lockstep_version_s": round(version, 3), "import_modules_s": round(imports, 3),
           "check_config_s": round(config, 3), "beyond_interpreter_s": round(version - python, 3)}
    print(f"  overhead: python {python:.3f}s, lockstep --version {version:.3f}s, imports {imports:.3f}s, check-config {config:.3f}s")
    return row


# --- 3. bytes moved by a rebuild ----------------------------------------------------------------


IDENTITY = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}


def trained_repo(base: Path, env: dict, bucket: str) -> tuple[Path, Path, dict]:
    """A bare origin and a clone holding the example project, trained and pushed to `bucket`.
    Returns (origin, developer clone, environment for commands in it)."""
    origin, dev = base / "origin.git", base / "dev"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=base)
    git("init", "-q", "-b", "main", str(dev), cwd=base)
    git("remote", "add", "origin", f"file://{origin}", cwd=dev)
    shutil.copytree(ROOT / "example-project", dev / "example-project", ignore=shutil.ignore_patterns(".lockstep", "cache", "tmp"))
    run_env = {**os.environ, **env, **IDENTITY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    run_env.pop("MLFLOW_TRACKING_URI", None)
    project = dev / "example-project"
    for argv in (("remote", "modify", "storage", "url", f"s3://{bucket}/dvc"), ("repro", "-q"), ("push", "-q")):
        subprocess.run([str(BIN / "dvc"), *argv], cwd=project, check=True, env=run_env, capture_output=True)
    return origin, dev, run_env


def bench_rebuild_bytes() -> dict:
    with tempfile.TemporaryDirectory() as tmp, s3(Path(tmp)) as (server, env):
        make_bucket(env, "rebuild-bytes")
        base = Path(tmp)
        origin, dev, run_env = trained_repo(base, env, "rebuild-bytes")
        params = dev / "example-project" / "params.yaml"
        params.write_text(params.read_text().replace("max_depth: 6", "max_depth: 5"))
        subprocess.run(["git", "add", "-A"], cwd=dev, check=True)
        subprocess.run(["git", "commit", "-qm", "m"], cwd=dev, check=True, env=run_env)
        subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=dev, check=True)
        proxy = FaultProxy(server.url, lambda method, path: None)  # counts bytes, injects nothing
        try:
            counted = {**run_env, "AWS_ENDPOINT_URL": proxy.url}
            everything = base / "everything"
            git("clone", "-q", f"file://{origin}", str(everything), cwd=base)
            subprocess.run([str(BIN / "dvc"), "pull", "-q"], cwd=everything / "example-project", env=counted, capture_output=True)
            pull_all = proxy.down
            proxy.reset()
            ci = base / "ci"
            git("clone", "-q", f"file://{origin}", str(ci), cwd=base)
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
    uv = shutil.which("uv")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "uv-cache"
        for label in ("cold", "warm"):
            venv = Path(tmp) / f"venv-{label}"
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
            start = time.perf_counter()
            subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--compile-bytecode", str(ROOT)],
                           check=True, env={**os.environ, "UV_CACHE_DIR": str(cache)})
            results[f"{label}_s"] = round(time.perf_counter() - start, 1)
    print(f"  setup (lockstep + dvc[s3] + mlflow-skinny with uv, bytecode compiled): cold {results['cold_s']}s, warm {results['warm_s']}s")
    return results


def consumer_repo(base: Path, env: dict, bucket: str) -> tuple[Path, str, str]:
    """A consumer repository: the example trained on main, and a PR branch trained and pushed."""
    _origin, dev, run_env = trained_repo(base, env, bucket)
    project = dev / "example-project"
    workflows = dev / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "ml-pr.yml").write_text((ROOT / "example-project/workflows/ml-pr.yml").read_text().replace("OWNER/lockstep/", "lockstep-dev/lockstep/"))
    shutil.copy(ROOT / "benchmarks/baseline/ml-pr-baseline.yml", workflows)

    def sh(*argv, cwd=project):
        subprocess.run(list(argv), cwd=cwd, check=True, env=run_env, capture_output=True)

    sh("git", "add", "-A", cwd=dev)
    sh("git", "commit", "-qm", "main", cwd=dev)
    sh("git", "push", "-q", "origin", "HEAD:main", cwd=dev)
    base_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dev, capture_output=True, text=True).stdout.strip()
    sh("git", "checkout", "-q", "-b", "feature", cwd=dev)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 150"))
    sh(str(BIN / "dvc"), "repro")
    sh(str(BIN / "dvc"), "push")
    sh("git", "add", "-A", cwd=dev)
    sh("git", "commit", "-qm", "pr", cwd=dev)
    sh("git", "push", "-q", "origin", "HEAD:feature", cwd=dev)
    head_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dev, capture_output=True, text=True).stdout.strip()
    return dev, base_sha, head_sha


def bench_pr_feedback() -> dict:
    from actrunner import Act, pr_payload
    from github_api import TOKEN, GitHubAPI

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, s3(Path(tmp)) as (_server, env):
        base = Path(tmp)
        make_bucket(env, "pr-feedback")
        dev, base_sha, head_sha = consumer_repo(base, env, "pr-feedback")
        api = GitHubAPI()
        act = Act(base / "act")
        payload = pr_payload(3, base_sha, head_sha)
        common = {**env, "GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "octo/ml"}
        secrets = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "GITHUB_TOKEN": TOKEN}
        try:
            for workflow, cache_var in (("ml-pr-baseline.yml", "PIP_CACHE_DIR"), ("ml-pr.yml", "UV_CACHE_DIR")):
                cache = base / f"cache-{workflow}"
                for label in ("cold", "warm"):  # the first run fills an empty cache, the second reuses it
                    before = len(api.requests)
                    start = time.perf_counter()
                    result = act.run(dev, "pull_request", workflow, payload=payload, secrets=secrets,
                                     env={**common, cache_var: str(cache)}, timeout=1800)
                    elapsed = time.perf_counter() - start
                    posted = any(r.method in ("POST", "PATCH") for r in api.requests[before:])
                    if result.returncode != 0 or not posted:
                        raise RuntimeError(f"{workflow} {label} failed:\n{result.log[-4000:]}")
                    results[f"{workflow.split('.')[0]}_{label}_s"] = round(elapsed, 1)
                    print(f"  {workflow} {label}: {elapsed:.1f}s to the comment", flush=True)
        finally:
            api.close()
    results["ratio_cold"] = round(results["ml-pr_cold_s"] / results["ml-pr-baseline_cold_s"], 2)
    results["ratio_warm"] = round(results["ml-pr_warm_s"] / results["ml-pr-baseline_warm_s"], 2)
    print(f"  lockstep / baseline: cold {results['ratio_cold']}, warm {results['ratio_warm']}")
    return results


BENCHES = {"verify-scaling": None, "overhead": bench_overhead, "rebuild-bytes": bench_rebuild_bytes, "setup": bench_setup,
           "pr-feedback": bench_pr_feedback}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=list(BENCHES))
    parser.add_argument("--full", action="store_true", help="include the 1 GB case")
    args = parser.parse_args()
    chosen = args.only or list(BENCHES)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "command": "python benchmarks/run.py" + (" --full" if args.full else "")}
    for name in chosen:
        print(f"== {name}", flush=True)
        report[name] = bench_verify_scaling(args.full) if name == "verify-scaling" else BENCHES[name]()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
