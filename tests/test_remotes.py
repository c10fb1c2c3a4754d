"""DVC remotes beyond S3: an HTTP remote with basic authentication on loopback. Its password
reaches lockstep as the `DVC_REMOTE_AUTH` secret, lives in DVC's configuration in memory only, and
never reaches a config file, the PR's code or the log."""

from __future__ import annotations

import json
import shutil

import pytest

from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_OK
from test_inprocess_validate import validate as _validate_in_process

from conftest import PROJECT, git, lockstep
from httpremote import HttpRemote
from test_shapes import SHAPES, Repo, make_repo, open_pr

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-remote-password"


@pytest.fixture
def http_remote(tmp_path):
    server = HttpRemote(tmp_path / "http-remote", "ci", PASSWORD)
    yield server
    server.close()


def http_repo(tmp_path, http_remote) -> Repo:
    """The cached-stage-metrics shape, pushed by a developer whose password is in config.local."""
    shape = next(s for s in SHAPES if s.name == "cached-stage-metrics")
    return make_repo(shape, tmp_path, remote=f"{http_remote.url}/dvc", remote_options=(
        ("storage", "auth", "basic"), ("storage", "user", "ci"),
        ("--local", "storage", "password", PASSWORD),  # the developer's machine only
    ))


def test_an_authenticated_http_remote_validates_and_rebuilds_with_the_secret_in_memory_only(tmp_path, http_remote):
    repo = http_repo(tmp_path, http_remote)
    assert any(path.startswith("dvc/files/md5/") for path in http_remote.files())
    base, head, checkout = open_pr(repo, "better", steps=50)

    # without the secret: a failed remote check that names the cause, not a crash
    report = tmp_path / "no-secret"
    proc = lockstep("validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head,
                    "--report-dir", str(report), cwd=checkout, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
    checks = {c["id"]: c for c in json.loads((report / "results.json").read_text())["checks"]}
    assert checks["lock-vs-remote"]["status"] == "fail"
    assert "401" in checks["lock-vs-remote"]["summary"] or "password" in checks["lock-vs-remote"]["summary"]

    # with the secret: every check passes, the password is masked and written nowhere
    report = tmp_path / "with-secret"
    proc = lockstep("validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head,
                    "--report-dir", str(report), cwd=checkout,
                    env={"GITHUB_ACTIONS": "true", "DVC_REMOTE_AUTH": f"password={PASSWORD}"})
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert f"::add-mask::{PASSWORD}" in proc.stdout
    assert proc.stdout.count(PASSWORD) == 1  # the mask command itself, nothing else
    for path in (checkout / "ml" / ".dvc").rglob("config*"):
        assert PASSWORD not in path.read_text(), path

    # a main rebuild pushes through the authenticated remote, then verifies it
    repo.set_steps(30)
    repo.commit("thirty steps")
    before = set(http_remote.files())
    ci = repo.clone("ci-main")
    proc = lockstep("rebuild", "--working-directory", "ml", "--register", "false", cwd=ci,
                    env={"GITHUB_ACTIONS": "true", "DVC_REMOTE_AUTH": f"storage.password={PASSWORD}"})
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
    assert set(http_remote.files()) > before
    assert not (ci / "ml" / ".dvc" / "config.local").exists()


def test_a_malformed_remote_secret_is_a_named_error(tmp_path, http_remote):
    repo = http_repo(tmp_path, http_remote)
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=repo.clone("ci"),
                    env={"GITHUB_ACTIONS": "true", "DVC_REMOTE_AUTH": "nopassword"})
    assert proc.returncode == 4, proc.stdout
    assert "DVC_REMOTE_AUTH line 1 is not KEY=VALUE" in proc.stdout


def test_an_s3_compatible_endpoint_with_its_own_url_and_authentication(tmp_path, bucket, monkeypatch):
    """MinIO, R2 or DagsHub's S3: `s3://` with `endpointurl` in .dvc/config, keys from the secrets.
    The endpoint here checks the access key on every request."""
    from faultproxy import FaultProxy
    proxy = FaultProxy(bucket.endpoint, lambda method, path: None, access_key="ci-key")
    try:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the endpoint comes from .dvc/config
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ci-key")
        shape = next(s for s in SHAPES if s.name == "cached-stage-metrics")
        repo = make_repo(shape, tmp_path, remote=f"s3://{bucket.name}/dvc", endpoint=proxy.url)
        assert any(key.startswith("dvc/files/md5/") for key in bucket.keys())
        base, head, checkout = open_pr(repo, "better", steps=50)

        # the wrong key: a failed remote check that says so, nothing else touched
        report = tmp_path / "wrong-key"
        proc = lockstep("validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head,
                        "--report-dir", str(report), cwd=checkout, env={"AWS_ACCESS_KEY_ID": "someone-else"})
        assert proc.returncode == EXIT_CHECKS_FAILED, proc.stdout[-3000:]
        checks = {c["id"]: c for c in json.loads((report / "results.json").read_text())["checks"]}
        assert checks["lock-vs-remote"]["status"] == "fail" and "Forbidden" in checks["lock-vs-remote"]["summary"]

        # the right key: every check passes through the authenticated endpoint
        report = tmp_path / "right-key"
        proc = lockstep("validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head,
                        "--report-dir", str(report), cwd=checkout)
        assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
        assert proxy.refused > 0
    finally:
        proxy.close()


@pytest.mark.parametrize("where", [".dvc/config", ".dvc/config.local"])
def test_a_pr_cannot_point_the_remote_checks_or_the_secret_at_a_server_of_its_choosing(tmp_path, http_remote, where):
    # the PR's developer pushed to the team's remote, then pointed the remote at another server, in
    # .dvc/config or in a .dvc/config.local it commits (DVC reads both): lockstep checks and pulls
    # from the base's remote, and the credential goes nowhere else
    repo = http_repo(tmp_path, http_remote)
    other = HttpRemote(tmp_path / "other-remote", "someone", "else")
    try:
        base, _head, _checkout = open_pr(repo, "better", steps=50)
        git("checkout", "-q", "better", cwd=repo.dev)
        config = repo.project / ".dvc" / "config"
        if where == ".dvc/config":
            config.write_text(config.read_text().replace(http_remote.url, other.url))
        else:
            (repo.project / where).write_text(f"['remote \"storage\"']\n    url = {other.url}\n")
            git("add", "-f", f"ml/{where}", cwd=repo.dev)
        assert other.url in (repo.project / where).read_text()
        head = repo.commit("store elsewhere", "better")
        git("checkout", "-q", "main", cwd=repo.dev)

        report = tmp_path / "report"
        proc = lockstep("validate", "--working-directory", "ml", "--base-sha", base, "--head-sha", head,
                        "--report-dir", str(report), cwd=repo.clone("ci-elsewhere", "better"),
                        env={"GITHUB_ACTIONS": "true", "DVC_REMOTE_AUTH": f"password={PASSWORD}"})
        checks = {c["id"]: c for c in json.loads((report / "results.json").read_text())["checks"]}
        assert proc.returncode == EXIT_OK, proc.stdout[-3000:]
        assert other.refused == 0 and other.stored == []  # not one request reached it
        assert checks["lock-vs-remote"]["status"] == "pass" and checks["pull"]["status"] == "pass"
        assert checks["config"]["status"] == "warn"
        named = ".dvc/config" if where == ".dvc/config" else ".dvc/config and .dvc/config.local (in this PR's commit)"
        assert f"{named}: remote 'storage': url changed: applies after merge" in checks["config"]["details"], checks["config"]
        assert "the base's remotes" in checks["config"]["summary"]
        assert other.url not in json.dumps(checks)  # the change is named, its value is not repeated
    finally:
        other.close()


# in process, on the local bed (tests/localbed.py): a local-folder remote
def test_a_committed_config_local_cannot_move_the_remote_and_the_jobs_own_is_kept(bed):
    # DVC reads .dvc/config.local over .dvc/config: one the PR commits is the PR's, and its remote
    # is not used; one the job wrote (`dvc remote modify --local`, not in git) is the job's
    pr = bed.sha("feature")
    elsewhere = bed.root / "elsewhere"

    def move(project):
        local = project / ".dvc" / "config.local"
        local.write_text(f"['remote \"storage\"']\n    url = {elsewhere}\n")
        git("add", "-f", str(local), cwd=bed.dev)

    head = bed.commit_on("feature", "Store elsewhere", move)
    run = _validate_in_process(bed, bed.clone("ci", "feature", depth=1), head=head)
    assert run.code == EXIT_OK, run.stdout[-3000:]
    assert run.checks["lock-vs-remote"]["status"] == "pass" and not elsewhere.exists()
    assert (".dvc/config and .dvc/config.local (in this PR's commit): remote 'storage': url changed: applies after merge"
            in run.checks["config"]["details"]), run.checks["config"]

    # the job points the remote at a mirror in its own config.local, and the team's is gone
    checkout = bed.clone("ci-job", "feature")
    git("checkout", "-q", pr, cwd=checkout)
    mirror = bed.root / "mirror"
    shutil.move(bed.remote, mirror)
    (checkout / PROJECT / ".dvc" / "config.local").write_text(f"['remote \"storage\"']\n    url = {mirror}\n")
    run = _validate_in_process(bed, checkout, head=pr)
    assert run.code == EXIT_OK, run.stdout[-3000:]
    assert run.checks["lock-vs-remote"]["status"] == "pass" and run.checks["config"]["status"] == "pass", run.checks["config"]


def test_a_named_aws_profile_of_the_developers_machine_gives_way_to_the_jobs_credentials(tmp_path, bucket, monkeypatch):
    """`dvc remote modify storage profile developer`, committed: the developer's `~/.aws/config`
    has that profile, a runner has none. The job's credentials (secrets, OIDC) are used instead;
    a profile the machine has is kept."""
    aws_config = tmp_path / "developer-aws-config"
    aws_config.write_text("[profile developer]\naws_access_key_id = dev-key\naws_secret_access_key = dev-secret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))  # the developer's machine
    shape = next(s for s in SHAPES if s.name == "cached-stage-metrics")
    repo = make_repo(shape, tmp_path, remote=f"s3://{bucket.name}/dvc", remote_options=(("storage", "profile", "developer"),))
    assert "profile = developer" in (repo.project / ".dvc" / "config").read_text()
    checkout = repo.clone("ci")
    runner = {"AWS_CONFIG_FILE": str(tmp_path / "no-such-file"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none-either")}
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout, env=runner)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert "AWS profile 'developer' of remote 'storage' is not on this machine: the job's AWS credentials are used" in proc.stdout
    # a machine that has the profile keeps it (lockstep's own process on the developer's machine)
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout)
    assert proc.returncode == EXIT_OK and "is not on this machine" not in proc.stdout, proc.stdout
    # with neither the profile nor credentials of the job's own, DVC's own error stands
    bare = {**runner, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    proc = lockstep("verify-remote", "--working-directory", "ml", cwd=checkout, env=bare)
    assert proc.returncode != EXIT_OK and "developer" in proc.stdout + proc.stderr
