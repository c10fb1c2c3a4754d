"""A pull request's code cannot read lockstep's secrets around its own environment, nor leave a
process behind: real processes, real /proc (Linux)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_OK

from conftest import BIN

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="Linux /proc only")

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-value",
    "MLFLOW_TRACKING_PASSWORD": "canary-mlflow-password",
    "DVC_REMOTE_AUTH": "canary-dvc-remote-auth",
    "GDRIVE_CREDENTIALS_DATA": '{"type": "service_account", "private_key": "canary-google-drive-key"}',
    "GOOGLE_CREDENTIALS": '{"type": "service_account", "private_key": "canary-google-cloud-key"}',
    "SSH_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\ncanary-ssh-key\n-----END OPENSSH PRIVATE KEY-----",
    "ACTIONS_RUNTIME_TOKEN": "canary-runtime-token",
}

# What a hostile command does: read the environ and cmdline of every ancestor it may, and report.
SNOOP = textwrap.dedent("""
    import json, os, sys
    found, readable, pid, parent = [], 0, os.getppid(), []
    while pid > 1:
        try:
            block = open(f"/proc/{pid}/environ", "rb").read().decode("utf-8", "replace")
            readable += 1
            found += [entry for entry in block.split("\\0") if "canary" in entry]
            if pid == os.getppid():
                parent = [entry for entry in block.split("\\0") if entry.startswith("AWS_SECRET_ACCESS_KEY=")]
        except OSError:
            pass
        stat = open(f"/proc/{pid}/stat").read()
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    json.dump({"found": found, "readable": readable, "parent": parent}, open(sys.argv[1], "w"))
""")

# The same process's double fork: a `setsid` daemon, renamed so that its command name is a
# workflow command, sleeping for 5 minutes with its output away from any pipe.
DAEMON = textwrap.dedent("""
    import os, sys
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            fd = os.open(os.devnull, os.O_RDWR)
            for n in (0, 1, 2):
                os.dup2(fd, n)
            open(sys.argv[1], "w").write(str(os.getpid()))
            link = os.path.join(os.path.dirname(sys.argv[1]), "\\n::error::pwned")
            os.symlink("/bin/sleep", link)
            os.execv(link, [link, "300"])
        os._exit(0)
    os.wait()
    while not os.path.exists(sys.argv[1]):
        pass
""")

# A lockstep-like process: secrets in its start-up environment, hardened as `lockstep validate`
# is, then the hostile command through the runner validate uses for the test command.
HOST = textwrap.dedent("""
    import os, subprocess, sys
    from lockstep import procenv, sandbox
    sandbox.harden()
    code = sandbox.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], cwd=".",
                       env=procenv.for_untrusted_code(os.environ), what="the test command")
    # lockstep itself keeps the values, and so do the trusted children that inherit its environment
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "canary-aws-secret-value"
    inherited = subprocess.run([sys.executable, "-c", "import os; print(os.environ['DVC_REMOTE_AUTH'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert inherited == "canary-dvc-remote-auth", inherited
    print("exit", code)
""")


def host(tmp_path: Path, command: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **SECRETS, "GITHUB_ACTIONS": "true"}
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-c", HOST, command, str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


@pytest.mark.unit
def test_untrusted_code_finds_no_secret_in_any_ancestor_environ(tmp_path):
    out = tmp_path / "found.json"
    proc = host(tmp_path, SNOOP, out)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(out.read_text())
    assert seen["readable"] >= 2  # lockstep's environ and the one above it were read: the probe looked
    assert seen["found"] == []
    # in lockstep's own block the name stays, its value is stars
    assert seen["parent"] == ["AWS_SECRET_ACCESS_KEY=" + "*" * len(SECRETS["AWS_SECRET_ACCESS_KEY"])]
    assert "exit 0" in proc.stdout


@pytest.mark.unit
def test_a_daemon_left_by_untrusted_code_is_killed_with_an_inert_warning(tmp_path):
    out = tmp_path / "daemon.pid"
    proc = host(tmp_path, DAEMON, out)
    assert proc.returncode == 0, proc.stderr
    pid = int(out.read_text())
    assert gone(pid), f"the daemon {pid} is still running"
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("::warning::")]
    assert len(warnings) == 1, proc.stdout
    assert "the test command left 1 process(es) running" in warnings[0]
    assert not any(line.lstrip().startswith("::error") for line in proc.stdout.splitlines()), proc.stdout


@pytest.mark.integration
def test_a_hostile_pr_stage_reads_no_secret_and_leaves_nothing_to_rewrite_the_verdict(tmp_path):
    from test_shapes import SHAPES, make_repo
    from test_trust import pull_request, retrain

    repo = make_repo(next(s for s in SHAPES if s.name == "cached-stage-metrics"), tmp_path)
    home = tmp_path / "home"
    home.mkdir()

    def hostile_evaluation(repo):
        evaluate = repo.project / "evaluate.py"
        evaluate.write_text(evaluate.read_text() + textwrap.dedent("""
            import sys, time
            home = os.path.expanduser("~")
            if os.environ.get("PROBE") == "ci" and not os.path.exists(os.path.join(home, "found.json")):
                found, report, pid = [], None, os.getppid()
                while pid > 1:
                    try:
                        found += [e for e in open(f"/proc/{pid}/environ", "rb").read().decode().split("\\0") if "canary" in e]
                        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0")
                        report = argv[argv.index("--report-dir") + 1] if "--report-dir" in argv else report
                    except OSError:
                        pass
                    stat = open(f"/proc/{pid}/stat").read()
                    pid = int(stat[stat.rindex(")") + 2:].split()[1])
                json.dump({"found": found, "report": report}, open(os.path.join(home, "found.json"), "w"))
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        fd = os.open(os.devnull, os.O_RDWR)
                        for n in (0, 1, 2):
                            os.dup2(fd, n)
                        open(os.path.join(home, "daemon.pid"), "w").write(str(os.getpid()))
                        results = os.path.join(report, "results.json")
                        for _ in range(600):  # a minute: wait for lockstep's verdict, then replace it
                            if os.path.exists(results) and "forged" not in open(results).read():
                                json.dump({"passed": True, "forged": True, "checks": []}, open(results, "w"))
                            time.sleep(0.1)
                        os._exit(0)
                    os._exit(0)
                os.wait()
        """))
        retrain(repo)

    base, head, checkout = pull_request(repo, "hostile", hostile_evaluation)
    report = checkout.parent / "hostile-report"
    outputs = checkout.parent / "hostile-outputs.txt"
    without_dvc_auth = {k: v for k, v in SECRETS.items() if k != "DVC_REMOTE_AUTH"}  # the remote is a folder
    proc = subprocess.run(
        [str(BIN / "lockstep"), "validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head,
         "--pr-number", "7", "--repository", "acme/churn-model", "--report-dir", str(report)],
        cwd=checkout, capture_output=True, text=True, timeout=600,
        env={**os.environ, **without_dvc_auth, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), "HOME": str(home),
             "PROBE": "ci"},
    )
    assert proc.returncode in (EXIT_OK, EXIT_CHECKS_FAILED), proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = json.loads((home / "found.json").read_text())
    assert seen["report"] == str(report)  # the probe walked up to lockstep and read its command line
    assert seen["found"] == []
    pid = int((home / "daemon.pid").read_text())
    time.sleep(1.0)  # a surviving daemon polls every 0.1 s
    assert gone(pid), f"the PR's daemon {pid} outlived the validation"
    results = json.loads((report / "results.json").read_text())
    assert "forged" not in results and {c["id"] for c in results["checks"]} >= {"re-evaluation", "gates"}
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("::warning") and "left" in line]
    assert any("re-evaluation left 1 process(es) running" in line for line in warnings), warnings or proc.stdout[-3000:]


def test_a_main_rebuild_keeps_its_credentials_but_no_token_and_runs_dvc_without_its_usage_report():
    from lockstep import procenv

    env = procenv.for_reviewed_code({"AWS_SECRET_ACCESS_KEY": "k", "GITHUB_TOKEN": "t", "GITHUB_OUTPUT": "/o", "PATH": "/bin"},
                                    {"PYTHONPATH": "."}, mlflow_run_id="r1")
    # two MLflow tries, not MLflow's four minutes of them, for a server the code names itself; W&B
    # offline, as the job has no key for it
    assert env == {"AWS_SECRET_ACCESS_KEY": "k", "PATH": "/bin", "PYTHONPATH": ".", "DVC_NO_ANALYTICS": "true",
                   "LOCKSTEP_MLFLOW_RUN_ID": "r1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "WANDB_MODE": "offline"}
    assert procenv.for_reviewed_code({"DVC_NO_ANALYTICS": "false"})["DVC_NO_ANALYTICS"] == "false"  # the caller's choice stands
    assert procenv.for_reviewed_code({}, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7"})["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"


def test_pr_code_gets_one_try_at_an_mlflow_server_of_its_own_unless_the_project_says_otherwise():
    """A developer's `mlflow.set_tracking_uri("http://localhost:1234")` in a stage: with MLflow's
    default retries the job waited minutes for that server before failing (measured: 4 min 10 s)."""
    from lockstep import procenv

    assert procenv.for_untrusted_code({"PATH": "/bin"})["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    chosen = procenv.for_untrusted_code({"PATH": "/bin"}, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"})
    assert chosen["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
