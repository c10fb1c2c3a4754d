"""The registry beyond lineage tags: model cards, alias history, approved promotion, digests.

Unit tests for the pure parts (provenance digests, history entries, the card), integration tests
against the MLflow server, a bare origin and the S3 server for what rebuild, promote, rollback,
history and verify write and read."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from lockstep import history, lineage, modelcard, provenance, registry
from lockstep.config import Gate
from lockstep.errors import EXIT_CHECKS_FAILED, EXIT_OK, EXIT_USAGE
from lockstep.metrics import check_gates

from conftest import PROJECT, git, lockstep

HOSTILE = "@octocat #1 [x](https://evil.example) <img src=x> ::error::boom"


# --- provenance ---------------------------------------------------------------------------------


def test_file_digest_is_sha256sum(tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x00model bytes\n" * 1000)
    assert provenance.sha256(model) == hashlib.sha256(model.read_bytes()).hexdigest()
    assert provenance.kind(model) == "file"
    assert provenance.sha256(tmp_path / "absent") == "" and provenance.kind(tmp_path / "absent") == ""


def test_folder_digest_matches_the_documented_shell_command(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub dir").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x01" * 5000)
    (folder / "sub dir" / "config.json").write_text('{"a": 1}\n')
    (folder / "B.txt").write_text("upper case sorts first in C order\n")
    (folder / "empty").mkdir()
    (folder / "link").symlink_to(folder / "B.txt")
    command = "find . -type f | LC_ALL=C sort | sed 's|^\\./||' | xargs -d '\\n' sha256sum | sha256sum"
    shell = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, check=True).stdout.split()[0]
    assert provenance.sha256(folder) == shell
    assert provenance.kind(folder) == "directory"
    before = provenance.sha256(folder)
    (folder / "sub dir" / "config.json").write_text('{"a": 2}\n')
    assert provenance.sha256(folder) != before


def test_gh_command_quotes_the_path():
    assert provenance.gh_verify_command("models/my model.pkl", "octo/ml") == "gh attestation verify 'models/my model.pkl' --repo octo/ml"


# --- alias history entries ----------------------------------------------------------------------


def test_history_entry_round_trips_and_stays_small():
    at = dt.datetime(2026, 12, 1, 10, 15, 0, 123456, tzinfo=dt.timezone.utc)
    entry = history.move("champion", "7", "5", "promotion", commit="a" * 40, run="https://github.com/o/r/actions/runs/9",
                         actor="oncall", reason="x" * 100_000 + "\nTrailer: y", at=at)
    assert entry.key == "lockstep.alias_history.champion.20261201T101500.123456Z"
    assert len(entry.value()) < 1500  # far below MLflow's 5,000-character tag values
    assert "\n" not in entry.reason
    back = history.parse(entry.key, entry.value(), "7")
    assert back == entry
    for junk in ("not json", "[1, 2]", json.dumps({"alias": "champion"}), json.dumps({"alias": "c", "at": "yesterday"})):
        assert history.parse(entry.key, junk, "7") is None
    assert history.parse("lockstep.model_md5", entry.value(), "7") is None
    with pytest.raises(ValueError):
        history.move("champion", "7", "5", "by hand")


def test_history_is_ordered_and_rendered_inert():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    moves = [
        history.move("champion", "3", "2", "rollback", at=t0 + dt.timedelta(hours=2), actor=HOSTILE, reason=HOSTILE),
        history.move("candidate", "2", "", "rebuild", at=t0),
        history.move("champion", "2", "", "promotion", at=t0 + dt.timedelta(hours=1)),
    ]
    tags = {m.key: m.value() for m in moves}
    collected = history.collect([("2", {k: v for k, v in tags.items()}), ("9", {"lockstep.alias_history.x.1": "junk"})])
    assert [m.by for m in collected] == ["rebuild", "promotion", "rollback"]
    assert [m.by for m in history.collect([("2", tags)], "champion")] == ["promotion", "rollback"]
    text = history.render_markdown("clf", collected)
    assert "**champion** (now version 3)" in text and "**candidate** (now version 2)" in text
    assert "@octocat" not in text and "<img" not in text and "](" not in text
    assert text.index("| rollback |") < text.index("| promotion |")  # newest first
    assert "No alias move" in history.render_markdown("clf", [])


# --- the model card -----------------------------------------------------------------------------


def _card(**changes) -> modelcard.Card:
    gates = (Gate("accuracy", min=0.9, max_regression=0.02), Gate("log_loss", direction="lower", required=False))
    metrics, before = {"accuracy": 0.95, "log_loss": 0.1, HOSTILE: 1.0}, {"accuracy": 0.93, "log_loss": 0.12}
    values = dict(
        model="clf", version="4", alias="candidate", lockstep_version="0.1.0", previous_version="3",
        promote_to="champion", promoted=True, repository="octo/ml", project="example-project",
        lock_commit="b" * 40, start_commit="c" * 40, pr_number="12", lock_sha256="d" * 64,
        model_path="models/model.pkl", model_md5="e" * 32, model_sha256="f" * 64, stages=["train", "evaluate"],
        trigger="push", reason=HOSTILE, actor="dana", workflow_run_url="https://github.com/octo/ml/actions/runs/5",
        mlflow_run_id="0" * 32, created_at="2026-12-01T10:00:00+00:00", params={"train.max_depth": 5, HOSTILE: HOSTILE},
        metrics=metrics, previous_metrics=before, gates=check_gates(gates, metrics, before),
        inputs={"data/prepared": "md5:123.dir", "src/train.py": "md5:456"}, evaluation_stages=["evaluate"],
        evaluation_data={"data/prepared": "md5:123.dir"},
    )
    values.update(changes)
    return modelcard.Card(**values)


def test_card_shows_lineage_metrics_change_gates_and_data():
    text = modelcard.render(_card())
    assert text.startswith("# Model card: clf version 4")
    for expected in ("| lock commit | `" + "b" * 40 + "` |", "| pull request | \\#\u206012 |", "| model SHA-256 | `" + "f" * 64,
                     "| accuracy | 0.95 | 0.93 | +0.02 (+2.15%) |", "| log\\_loss | 0.1 | 0.12 | -0.02 (-16.67%) |",
                     "2 of 2 gate(s) passed against version 3", "Promotion: promoted to `champion`.",
                     "| data/prepared | `md5:123.dir` |", "| train.max\\_depth | 5 |", "| lockstep | 0.1.0 |"):
        assert expected in text, expected
    assert "@octocat" not in text and "<img" not in text and "](" not in text and "\n::" not in text


def test_card_without_an_earlier_version_and_waiting_promotion():
    text = modelcard.render(_card(previous_version="", previous_metrics={}, promoted=None))
    assert "no earlier version" in text and "| accuracy | 0.95 | - | - |" in text
    assert "promotion to `champion` waits for approval" in text


def test_description_fits_mlflow_limit():
    huge = {f"p{i}": "v" * 50 for i in range(400)}
    card = _card(params=huge)
    assert len(modelcard.render(card)) > modelcard.DESCRIPTION_LIMIT
    short = modelcard.description(card)
    assert len(short) <= modelcard.DESCRIPTION_LIMIT and "model\\_card.md" in short or "model_card.md" in short
    assert "| lock commit |" in short
    assert modelcard.description(_card()) == modelcard.render(_card())


def test_pr_number_from_github_merge_subjects():
    assert registry.pr_number("Merge pull request #8 from octo/feature") == "8"
    assert registry.pr_number("More trees (#12)") == "12"
    assert registry.pr_number("Fix #3 in the docs") == ""


def test_verify_spec_forms():
    assert registry.parse_spec("clf@champion") == ("clf", "champion", None)
    assert registry.parse_spec("models:/clf/3") == ("clf", None, "3")
    with pytest.raises(Exception) as info:
        registry.parse_spec("clf")
    assert "NAME@ALIAS" in str(info.value)


def test_code_spans_cannot_be_closed_or_split():
    text = modelcard.render(_card(model_path="models/a`b|c <x>.pkl"))
    assert "| model file | `models/a'b\\|c <x>.pkl` |" in text


# --- against the registry -----------------------------------------------------------------------


def _outputs(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line) if path.exists() else {}


@pytest.mark.integration
def test_rebuilds_write_card_digest_and_history_and_verify_checks_files(consumer, mlflow_env):
    from mlflow import MlflowClient

    from test_rebuild import rebuild

    client = MlflowClient(mlflow_env.url)
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Merge pull request #8 from octo/shallower")
    checkout = consumer.clone("ci-1")
    summary = consumer.root / "summary-1.md"
    proc, first = rebuild(checkout, "--reason", "merge of #8", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    model_file = checkout / PROJECT / "models" / "model.pkl"
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert first["model-sha256"] == digest and first["model-path"] == f"{PROJECT}/models/model.pkl"
    assert first["model-kind"] == "file"
    version = client.get_model_version(consumer.model, first["model-version"])
    assert version.tags[lineage.MODEL_SHA256] == digest
    # the card: the version's description, the run's model_card.md, the job summary
    card = version.description
    assert card.startswith(f"# Model card: {consumer.model.replace('-', chr(92) + '-')} version 1")
    assert f"| lock commit | `{first['lock-commit']}` |" in card and "| pull request | \\#\u20608 |" in card
    assert f"| model SHA-256 | `{digest}` |" in card and "| train.max\\_depth | 5 |" in card
    assert "| data/prepared | `md5:" in card and "no earlier version" in card
    artifact = client.download_artifacts(first["mlflow-run-id"], "model_card.md", str(consumer.root))
    assert Path(artifact).read_text(encoding="utf-8") == card
    text = summary.read_text()
    assert "Model card of version 1" in text and f"| model SHA-256 | `{digest}` |" in text
    assert "### Alias history of" in text and "| rebuild |" in text and "| promotion |" in text

    # verify: the CI-built file matches; a changed file does not, and both digests are named
    proc = lockstep("verify", str(model_file), "--model", f"{consumer.model}@champion", cwd=consumer.root)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert f"gh attestation verify {model_file}" in proc.stdout
    tampered = consumer.root / "tampered.pkl"
    tampered.write_bytes(model_file.read_bytes() + b"\0")
    proc = lockstep("verify", str(tampered), "--model", f"{consumer.model}@champion", cwd=consumer.root)
    assert proc.returncode == EXIT_CHECKS_FAILED
    assert digest in proc.stdout + proc.stderr and hashlib.sha256(tampered.read_bytes()).hexdigest() in proc.stdout + proc.stderr
    proc = lockstep("verify", str(consumer.root / "absent.pkl"), "--model", f"{consumer.model}@champion", cwd=consumer.root)
    assert proc.returncode == EXIT_USAGE

    # a second rebuild with promotion left to an approval: candidate moves, champion does not
    git("pull", "-q", "origin", "main", cwd=consumer.dev)
    consumer.set_param("max_depth: 5", "max_depth: 4")
    consumer.commit("Shallower still (#9)")
    proc, second = rebuild(consumer.clone("ci-2"), "--promote", "false")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert second["promoted"] == "false"
    assert client.get_model_version_by_alias(consumer.model, "candidate").version == second["model-version"]
    assert client.get_model_version_by_alias(consumer.model, "champion").version == first["model-version"]
    card = client.get_model_version(consumer.model, second["model-version"]).description
    assert "Compared with the version `candidate` pointed to before: version 1." in card
    assert "promotion to `champion` waits for approval" in card and "| pull request | \\#\u20609 |" in card

    # the approved promotion: gates against champion's holder, who/when/why recorded
    outputs = consumer.root / "promote-outputs.txt"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs), "GITHUB_ACTOR": "release-manager",
           "GITHUB_STEP_SUMMARY": str(consumer.root / "promote-summary.md")}
    proc = lockstep("promote", "--working-directory", PROJECT, "--version", second["model-version"], "--reason", "approved",
                    "--environment", "production", cwd=consumer.dev, env=env)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert _outputs(outputs)["promoted"] == "true" and _outputs(outputs)["previous-version"] == first["model-version"]
    assert client.get_model_version_by_alias(consumer.model, "champion").version == second["model-version"]
    tags = client.get_model_version(consumer.model, second["model-version"]).tags
    assert tags["lockstep.promotion.by"] == "release-manager" and tags["lockstep.promotion.environment"] == "production"
    assert tags[lineage.PROMOTED_FROM] == first["model-version"]

    # a rollback, then the whole history: per alias, in order, moved by what
    proc = lockstep("rollback", "--working-directory", PROJECT, "--reason", "latency", cwd=consumer.dev,
                    env={"GITHUB_ACTOR": "oncall"})
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    moves = registry.read_history(_tracker(), consumer.model)
    assert [(m.alias, m.version, m.previous, m.by) for m in moves] == [
        ("candidate", "1", "", "rebuild"), ("champion", "1", "", "promotion"), ("candidate", "2", "1", "rebuild"),
        ("champion", "2", "1", "promotion"), ("champion", "1", "2", "rollback")]
    assert moves[0].commit == first["lock-commit"] and moves[0].mlflow_run == first["mlflow-run-id"]
    assert moves[3].actor == "release-manager" and moves[4].actor == "oncall" and moves[4].reason == "latency"
    proc = lockstep("history", "--model", consumer.model, "--alias", "champion", cwd=consumer.root)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "->" in line]
    assert len(lines) == 3 and "rollback" in lines[-1] and "candidate" not in proc.stdout


def _tracker():
    from lockstep import tracking

    return tracking.Tracker()


@pytest.mark.integration
def test_promote_refuses_a_version_that_fails_the_gates(consumer, mlflow_env):
    from mlflow import MlflowClient

    from test_rebuild import rebuild

    client = MlflowClient(mlflow_env.url)
    proc, first = rebuild(consumer.clone("ci-1"), "--register-unchanged", "true")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    consumer.set_param("max_depth: 6", "max_depth: 5")
    consumer.commit("Shallower")
    proc, second = rebuild(consumer.clone("ci-2"), "--promote", "false")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    # as if the candidate had scored far worse than champion's holder
    client.set_model_version_tag(consumer.model, second["model-version"], "lockstep.metric.accuracy", "0.5")
    proc = lockstep("promote", "--working-directory", PROJECT, "--reason", "try", cwd=consumer.dev)
    assert proc.returncode == EXIT_CHECKS_FAILED
    assert "accuracy" in proc.stdout + proc.stderr and "below the minimum" in proc.stdout + proc.stderr
    assert client.get_model_version_by_alias(consumer.model, "champion").version == first["model-version"]
    assert [m.by for m in registry.read_history(_tracker(), consumer.model, "champion")] == ["promotion"]
    # a version without lineage is refused
    run = client.create_run("0")
    hand = client.create_model_version(consumer.model, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    proc = lockstep("promote", "--working-directory", PROJECT, "--version", str(hand.version), "--reason", "x", cwd=consumer.dev)
    assert proc.returncode == EXIT_USAGE and "no lockstep lineage" in proc.stdout + proc.stderr


# --- who approved a promotion -------------------------------------------------------------------

REVIEWS_REPO = "octo/ml"


def test_approval_is_read_for_the_promotion_environment_only():
    def review(login, environment, state="approved", comment=""):
        return {"state": state, "comment": comment, "user": {"login": login}, "environments": [{"name": environment}]}

    reviews = [review("mallory", "staging"), review("eve", "production", "rejected", "no"),
               review("dana", "Production", comment="looks good"), review("erin", "production"),
               review("dana", "production", comment="looks good")]  # a re-run lists it again
    approval = registry.approval_from("production", reviews)
    assert approval.reviewers == (("dana", "looks good"), ("erin", ""))
    assert approval.logins == "dana, erin" and approval.text() == "approved by dana: looks good; erin"
    none = registry.approval_from("production", [review("mallory", "staging")])
    assert none.reviewers == () and none.text().startswith("approval not recorded: ") and "'production'" in none.text()
    # nothing to look up from a shell or without an environment; no token: said, not raised
    assert registry.approval_of_run("production", REVIEWS_REPO, "", "t") is None
    assert registry.approval_of_run("", REVIEWS_REPO, "12", "t") is None
    assert "actions: read" in registry.approval_of_run("production", REVIEWS_REPO, "12", "").problem


def test_an_approval_comment_is_inert_in_tags_history_and_summary():
    comment = HOSTILE + "\n\x1b[31mred\x1b[0m\r\n::warning::x"
    approval = registry.approval_from("production", [
        {"state": "approved", "comment": comment, "user": {"login": "dana"}, "environments": [{"name": "production"}]}])
    entry = history.move("champion", "2", "1", "promotion", approved_by=approval.logins, approval=approval.text())
    assert "\n" not in entry.approval and "\x1b" not in entry.approval and "\r" not in entry.approval
    back = history.parse(entry.key, entry.value(), "2")
    assert back == entry
    text = history.render_text("clf", [back])
    assert "approved by dana: @octocat" in text and "\x1b" not in text
    markdown = history.render_markdown("clf", [back])
    assert "approved by dana" in markdown and "@octocat" not in markdown and "<img" not in markdown and "](" not in markdown
    result = registry.Promotion("clf", "champion", "2", "1", True, [], "a" * 40, approval)
    summary = registry.promotion_summary(result)
    assert "✅ approved by dana: " in summary
    assert "@octocat" not in summary and "<img" not in summary and "](" not in summary
    assert not any(line.lstrip().startswith("::") for line in summary.splitlines())


def _promotable(bed):
    """A version as a rebuild with `--promote false` leaves it: lineage tags, candidate alias, no
    champion (registered directly: what promote reads is the registry, not the build)."""
    from mlflow import MlflowClient

    bed.use_mlflow()
    client = MlflowClient(bed.tracking_uri)
    client.create_registered_model("breast-cancer-classifier")
    run = client.create_run(client.create_experiment("ci"))
    tags = {**{tag: "a" * 40 for tag in lineage.REQUIRED},
            **{lineage.METRIC_PREFIX + name: "0.97" for name in ("accuracy", "f1", "roc_auc")}}
    version = client.create_model_version("breast-cancer-classifier", f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags)
    client.set_registered_model_alias("breast-cancer-classifier", "candidate", version.version)
    return str(version.version)


def _actions_env(api, run_id: int, token: str) -> dict[str, str]:
    return {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REVIEWS_REPO, "GITHUB_RUN_ID": str(run_id),
            "GITHUB_TOKEN": token, "GITHUB_ACTOR": "github-actions[bot]"}


@pytest.mark.unit
def test_promote_records_who_approved_the_environment(bed, api):
    from mlflow import MlflowClient

    from github_api import TOKEN

    version = _promotable(bed)
    api.review(REVIEWS_REPO, 4242, "dana", "looks good")
    api.review(REVIEWS_REPO, 4242, "mallory", "not this one", environment="staging")
    run = bed.cli("promote", "--working-directory", str(bed.project), "--environment", "production", "--reason", "merge of #3",
                  env=_actions_env(api, 4242, TOKEN))
    assert run.code == EXIT_OK, run.stdout + run.stderr
    client = MlflowClient(bed.tracking_uri)
    model = run.outputs["model-name"]
    assert str(client.get_model_version_by_alias(model, "champion").version) == version
    tags = client.get_model_version(model, version).tags
    assert tags["lockstep.promotion.approved_by"] == "dana"
    assert tags["lockstep.promotion.approval"] == "approved by dana: looks good"
    assert tags["lockstep.promotion.environment"] == "production"
    (move,) = registry.read_history(_tracker(), model, "champion")
    assert (move.approved_by, move.approval) == ("dana", "approved by dana: looks good")
    assert run.outputs["approved-by"] == "dana"
    assert "✅ approved by dana: looks good" in run.summary
    (request,) = [r for r in api.requests if r.path.endswith("/approvals")]
    assert request.path == f"/repos/{REVIEWS_REPO}/actions/runs/4242/approvals"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert run.stdout.count(TOKEN) == run.stdout.count(f"::add-mask::{TOKEN}") == 1  # masked before any use
    assert TOKEN not in run.stderr + run.summary


@pytest.mark.unit
def test_promote_goes_on_with_a_warning_when_the_approval_cannot_be_read(bed, api):
    """The environment already held the job until its reviewers approved: a token without
    `actions: read` loses the record, not the promotion, and says what to grant."""
    from mlflow import MlflowClient

    from github_api import TOKEN

    version = _promotable(bed)
    api.fault("GET", r"/approvals$", 403, message="Resource not accessible by integration")
    run = bed.cli("promote", "--working-directory", str(bed.project), "--environment", "production",
                  env=_actions_env(api, 4242, TOKEN))
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert "::warning title=lockstep promote%3A approval not recorded::" in run.stdout
    assert "403 Resource not accessible by integration" in run.stdout and "actions: read" in run.stdout
    client = MlflowClient(bed.tracking_uri)
    model = run.outputs["model-name"]
    assert str(client.get_model_version_by_alias(model, "champion").version) == version
    tags = client.get_model_version(model, version).tags
    assert tags["lockstep.promotion.approved_by"] == ""
    assert tags["lockstep.promotion.approval"].startswith("approval not recorded: GET /repos/octo/ml/actions/runs/4242/approvals: 403")
    assert run.outputs["approved-by"] == "" and "⚠️ approval not recorded" in run.summary


# --- what an alias serves: an MLflow model is not replaced by a raw file ---------------------------


def test_only_a_file_after_a_logged_model_is_a_downgrade():
    from types import SimpleNamespace

    def version(number, source):
        return SimpleNamespace(version=number, tags={"lockstep.model_source": source} if source is not None else {})

    def check(before, after):
        holder = version("1", before) if before != "none" else None
        return (bool(registry.file_after_model("clf", "champion", holder, version("2", after))),
                bool(registry.source_not_known("clf", "champion", holder, version("2", after))))

    assert check("logged-model", "file") == (True, False)
    for allowed in (("file", "file"), ("logged-model", "logged-model"), ("file", "logged-model"), ("none", "file"),
                    (None, None), (None, "logged-model"), ("file", None)):
        assert check(*allowed) == (False, False), allowed
    # a version an older lockstep registered (no tag) cannot be told apart: allowed, and said
    assert check(None, "file") == (False, True) and check("logged-model", None) == (False, True)
    assert check("logged-model", "junk") == (False, True)  # a value lockstep does not write counts as unknown
    message = registry.file_after_model("clf", "champion", version("7", "logged-model"), version("9", "file"))
    assert "version 7, an MLflow model" in message and "version 9 is the model file as it is" in message
    assert "mlflow.pyfunc.load_model('models:/clf@champion')" in message


def _registered(bed, *sources):
    """Versions with lockstep's lineage, one per `lockstep.model_source` given (None: no such tag,
    as an older lockstep registered them); the last holds the candidate alias."""
    from mlflow import MlflowClient

    bed.use_mlflow()
    client = MlflowClient(bed.tracking_uri)
    client.create_registered_model("breast-cancer-classifier")
    experiment = client.create_experiment("ci")
    numbers = []
    for source in sources:
        run = client.create_run(experiment)
        tags = {**{tag: "a" * 40 for tag in lineage.REQUIRED},
                **{lineage.METRIC_PREFIX + name: "0.97" for name in ("accuracy", "f1", "roc_auc")},
                **({"lockstep.model_source": source} if source else {})}
        created = client.create_model_version("breast-cancer-classifier", f"{run.info.artifact_uri}/model",
                                              run.info.run_id, tags=tags)
        numbers.append(str(created.version))
    client.set_registered_model_alias("breast-cancer-classifier", "candidate", numbers[-1])
    return client, numbers


@pytest.mark.unit
def test_promote_refuses_a_file_where_the_alias_serves_an_mlflow_model(bed):
    client, (logged, raw) = _registered(bed, "logged-model", "file")
    model = "breast-cancer-classifier"
    project = str(bed.project)
    first = bed.cli("promote", "--working-directory", project, "--version", logged, "--reason", "first")
    assert first.code == EXIT_OK, first.stdout + first.stderr
    before = client.get_model_version(model, raw).tags
    run = bed.cli("promote", "--working-directory", project, "--reason", "merge of #4")
    assert run.code == EXIT_USAGE, run.stdout + run.stderr
    said = run.stdout.replace("%0A", "\n")
    assert f"{model}@champion serves version {logged}, an MLflow model" in said
    assert f"version {raw} is the model file as it is (lockstep.model_source: file)" in said
    assert "mlflow.<flavor>.log_model(model, name='model')" in said and "LOCKSTEP_MLFLOW_RUN_ID" in said
    assert f"--version {raw} --allow-file-model true" in said
    assert "model file as it is" in run.outputs["error"] and "invalid input" in run.summary
    # nothing changed in the registry: the alias, the refused version's tags, the alias history
    assert str(client.get_model_version_by_alias(model, "champion").version) == logged
    assert client.get_model_version(model, raw).tags == before
    assert [(m.version, m.by) for m in registry.read_history(_tracker(), model, "champion")] == [(logged, "promotion")]

    # on purpose: the alias moves, with a warning, and is recorded as any promotion
    run = bed.cli("promote", "--working-directory", project, "--reason", "consumers load the file",
                  "--allow-file-model", "true")
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert "::warning title=lockstep promote%3A a file replaces an MLflow model::" in run.stdout
    assert str(client.get_model_version_by_alias(model, "champion").version) == raw
    assert [(m.version, m.previous) for m in registry.read_history(_tracker(), model, "champion")] == [
        (logged, ""), (raw, logged)]


@pytest.mark.unit
def test_promote_moves_file_to_file_file_to_model_and_versions_that_do_not_say(bed):
    client, (old, raw, raw_again, logged) = _registered(bed, None, "file", "file", "logged-model")
    model = "breast-cancer-classifier"
    project = str(bed.project)
    steps = [(old, ""), (raw, f"version {old} does not say whether it holds an MLflow model"), (raw_again, ""), (logged, "")]
    for version, note in steps:
        run = bed.cli("promote", "--working-directory", project, "--version", version, "--reason", "next")
        assert run.code == EXIT_OK, run.stdout + run.stderr
        assert str(client.get_model_version_by_alias(model, "champion").version) == version
        assert (note in run.stdout) if note else ("does not say" not in run.stdout)
        assert "::warning" not in run.stdout


@pytest.mark.unit
def test_a_rollback_to_a_file_from_an_mlflow_model_is_made_with_a_warning(bed):
    """A rollback is a person's choice of one version: it is not refused, what it breaks is said."""
    client, (raw, logged) = _registered(bed, "file", "logged-model")
    model = "breast-cancer-classifier"
    client.set_registered_model_alias(model, "champion", logged)
    run = bed.cli("rollback", "--working-directory", str(bed.project), "--reason", "latency")
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert str(client.get_model_version_by_alias(model, "champion").version) == raw
    assert "::warning title=lockstep rollback%3A a file replaces an MLflow model::" in run.stdout
    assert f"{model}@champion serves version {logged}, an MLflow model" in run.stdout
    assert "⚠️" in run.summary and "The rollback was made as asked" in run.summary
    # back to the MLflow model: nothing to say
    run = bed.cli("rollback", "--working-directory", str(bed.project), "--version", logged, "--reason", "fixed")
    assert run.code == EXIT_OK and "::warning" not in run.stdout
