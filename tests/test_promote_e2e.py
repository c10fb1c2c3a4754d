"""End to end: main-rebuild.yml with `promote: false`, then promote.yml and attest.yml as jobs of
the consumer's workflow, under act. The rebuild job registers and sets the candidate alias only; the
promote job, in the production environment, runs after it, moves the promotion alias and records
who approved from the run's review history (act does not hold a job for an environment's
reviewers; GitHub does: the test server holds the review GitHub would have recorded); the attest
job attests the model the rebuild outputs."""

from __future__ import annotations

import hashlib
import json

import pytest

from actrunner import LIBRARY, REPOSITORY, install_workflows, push_payload, run_env, secrets
from conftest import PROJECT, git

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ACT_RUN_ID = 1  # github.run_id under act

APPROVED = f"""# Consumer workflow: main rebuilds whose promotion waits for the production environment.
name: ml-main-approved
on:
  push:
    branches: [main]
permissions: {{}}
jobs:
  rebuild:
    permissions:
      contents: write # push the dvc.lock commit back to main
      id-token: write # AWS OIDC (aws-role-to-assume), if used
    uses: {LIBRARY}/.github/workflows/main-rebuild.yml@v1
    with:
      working-directory: {PROJECT}
      reason: merge of the shallower trees
      promote: false
    secrets:
      AWS_ACCESS_KEY_ID: ${{{{ secrets.AWS_ACCESS_KEY_ID }}}}
      AWS_SECRET_ACCESS_KEY: ${{{{ secrets.AWS_SECRET_ACCESS_KEY }}}}
      MLFLOW_TRACKING_URI: ${{{{ secrets.MLFLOW_TRACKING_URI }}}}
  promote:
    needs: rebuild
    if: needs.rebuild.outputs.model-version != ''
    permissions:
      contents: read # read lockstep.yaml at the lock commit
      actions: read # read who approved the environment
    uses: {LIBRARY}/.github/workflows/promote.yml@v1
    with:
      environment: production
      version: ${{{{ needs.rebuild.outputs.model-version }}}}
      lock-commit: ${{{{ needs.rebuild.outputs.lock-commit }}}}
      working-directory: {PROJECT}
      reason: merge of the shallower trees
    secrets:
      MLFLOW_TRACKING_URI: ${{{{ secrets.MLFLOW_TRACKING_URI }}}}
  attest:
    needs: rebuild
    if: needs.rebuild.outputs.model-sha256 != ''
    permissions:
      id-token: write # sign the model's attestation
      attestations: write # store the model's attestation
    uses: {LIBRARY}/.github/workflows/attest.yml@v1
    with:
      model-path: ${{{{ needs.rebuild.outputs.model-path }}}}
      model-sha256: ${{{{ needs.rebuild.outputs.model-sha256 }}}}
"""


def test_promote_job_moves_the_alias_after_the_rebuild(consumer, act, api, mlflow_env):
    from mlflow import MlflowClient

    from lockstep import registry, tracking

    install_workflows(consumer)
    (consumer.dev / ".github" / "workflows" / "ml-main-approved.yml").write_text(APPROVED)
    consumer.set_param("max_depth: 6", "max_depth: 5")
    merged = consumer.commit("Merge pull request #8 from octo/shallower")
    api.review(REPOSITORY, ACT_RUN_ID, "dana", "looks good", environment="production")
    result = act.run(consumer.dev, "push", "ml-main-approved.yml", payload=push_payload(merged),
                     secrets=secrets(mlflow_env.url), env=run_env(consumer, api))
    assert result.returncode == 0, result.log[-6000:]

    client = MlflowClient(mlflow_env.url)
    (version,) = client.search_model_versions(f"name='{consumer.model}'")
    assert client.get_model_version_by_alias(consumer.model, "candidate").version == version.version
    assert client.get_model_version_by_alias(consumer.model, "champion").version == version.version
    # the rebuild job left promotion to the promote job, which recorded it after the rebuild's move
    moves = registry.read_history(tracking.Tracker(), consumer.model)
    assert [(m.alias, m.by) for m in moves] == [("candidate", "rebuild"), ("champion", "promotion")]
    assert moves[1].reason == "merge of the shallower trees (environment production)"
    assert moves[1].commit == version.tags["lockstep.lock_commit"]
    assert (moves[1].approved_by, moves[1].approval) == ("dana", "approved by dana: looks good")
    tags = client.get_model_version(consumer.model, version.version).tags
    assert tags["lockstep.promotion.environment"] == "production"
    assert tags["lockstep.promotion.approved_by"] == "dana"
    # the promote job's token read the review history of its own run
    (reviews,) = [r for r in api.requests if r.path.endswith("/approvals")]
    assert reviews.path == f"/repos/{REPOSITORY}/actions/runs/{ACT_RUN_ID}/approvals"
    assert "promotion to `champion` waits for approval" in client.get_model_version(consumer.model, version.version).description
    # the attest job, a job of the consumer's own, attested the model file CI built by its path
    # from the repository root, with the digest the registry holds
    git("pull", "-q", "origin", "main", cwd=consumer.dev)
    (bundle,) = (act.artifacts / "attestations").iterdir()
    subject = json.loads(bundle.read_text())["subject"]
    assert subject == {"name": f"{PROJECT}/models/model.pkl", "digest": "sha256:" + tags["lockstep.model_sha256"]}
    consumer.dvc("pull", "models/model.pkl")
    local = hashlib.sha256((consumer.project / "models" / "model.pkl").read_bytes()).hexdigest()
    assert local == tags["lockstep.model_sha256"]
