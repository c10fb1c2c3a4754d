"""The environment lockstep hands to the project's own code (stage commands, the test command).

A pull request's code is untrusted: it runs with no GitHub token, no MLflow or DVC remote
credential, no cloud credential, no way to mint an OIDC token, and no path to the files through
which a step writes its outputs, environment or summary (so it cannot write lockstep's verdict).
lockstep itself pulls before and logs after, in its own process.

A main rebuild runs reviewed code: it keeps the credentials the job was given (training may
read data or log to MLflow) but never a GitHub token or the step's output files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Variable names that hold credentials, whatever the service (`AWS_SECRET_ACCESS_KEY`,
# `MY_API_TOKEN`, `DB_PASSWORD`, ...): a whole `_`-separated word of the name.
_SECRET_WORD = re.compile(
    r"(^|_)(TOKEN|SECRET|SECRETS|PASSWORD|PASSWD|PASS|CREDENTIAL|CREDENTIALS|PRIVATE|APIKEY|AUTH|SESSION|SAS)(_|$)",
    re.IGNORECASE,
)
_KEY_NAME = re.compile(r"(^|_)(ACCESS|API|SECRET|ACCOUNT|CLIENT|PRIVATE)_KEY(_|$)|(^|_)KEY_ID(_|$)", re.IGNORECASE)

# Whole families that only credentials and runner plumbing live in.
_UNTRUSTED_DROP_PREFIXES = (
    "AWS_", "AZURE_", "ARM_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "MLFLOW_", "DATABRICKS_",
    "ACTIONS_", "INPUT_", "GH_", "LOCKSTEP_", "SSH_", "KUBE", "DOCKER_", "NPM_", "PYPI_", "TWINE_",
    "UV_INDEX_", "PIP_INDEX", "PIP_EXTRA_INDEX",
)
# The files through which a step talks to the runner, and git's credential plumbing.
_RUNNER_FILES = ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE", "GITHUB_STEP_SUMMARY")
_ALWAYS_DROP = {"GITHUB_TOKEN", "GIT_ASKPASS", "GIT_CONFIG_PARAMETERS", "NETRC", *_RUNNER_FILES}
_ALWAYS_DROP_PREFIXES = ("ACTIONS_ID_TOKEN_", "ACTIONS_RUNTIME_", "ACTIONS_CACHE_", "ACTIONS_RESULTS_",
                         "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "GIT_CONFIG_COUNT", "INPUT_", "LOCKSTEP_", "GH_")


def looks_secret(name: str) -> bool:
    return bool(_SECRET_WORD.search(name) or _KEY_NAME.search(name))


def withheld_from_untrusted(name: str) -> bool:
    """Whether a pull request's code must not see this variable (sandbox.py also blanks these in
    lockstep's own /proc/<pid>/environ)."""
    return (name in _ALWAYS_DROP or name.startswith(_UNTRUSTED_DROP_PREFIXES)
            or name.startswith(_ALWAYS_DROP_PREFIXES) or looks_secret(name))


def for_untrusted_code(environ: Mapping[str, str], extra: Mapping[str, str] | None = None, *,
                       mlflow_uri: str | None = None) -> dict[str, str]:
    """The environment of a pull request's code: nothing that grants access to anything."""
    env = {name: value for name, value in environ.items() if not withheld_from_untrusted(name)}
    env.update(dict(extra or {}))
    # DVC's usage report is a daemon that would outlive the stage (and be killed as one, with a warning)
    env.setdefault("DVC_NO_ANALYTICS", "true")
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store unless told; skinny has no SQL store
    # an MLflow server the code names itself (a developer's `localhost:5000`) gets no credential
    # here and is seldom reachable: MLflow's own retries would hold the job for minutes before the
    # error lockstep explains, so it gets one try (the project's `env:` may say otherwise)
    env.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    # Weights & Biases online needs an API key, which this code never gets: its run goes to a local
    # folder instead, as `wandb offline` on a developer's machine (the project's `env:` may say otherwise)
    env.setdefault("WANDB_MODE", "offline")
    return env


RUN_ID_VARIABLE = "LOCKSTEP_MLFLOW_RUN_ID"  # the main rebuild's MLflow run, for the training code to log into


def for_reviewed_code(environ: Mapping[str, str], extra: Mapping[str, str] | None = None, *,
                      mlflow_run_id: str | None = None) -> dict[str, str]:
    """The environment of merged code in a main rebuild: the job's credentials stay (training may
    read data or log to MLflow), GitHub tokens and the step's runner files do not. The rebuild's
    MLflow run is offered as LOCKSTEP_MLFLOW_RUN_ID, for code that chooses to log into it
    (`mlflow.start_run(run_id=...)`), not as MLflow's own MLFLOW_RUN_ID: with that set,
    `mlflow.start_run()` resumes lockstep's run, and fails after the code's own
    `mlflow.set_experiment(...)` (its run is in another experiment)."""
    env = {
        name: value
        for name, value in environ.items()
        if name not in _ALWAYS_DROP and not name.startswith(_ALWAYS_DROP_PREFIXES)
    }
    env.update(dict(extra or {}))
    # lockstep's own `dvc repro`: DVC's usage report would be a second process beside the training
    env.setdefault("DVC_NO_ANALYTICS", "true")
    # a server the code names itself that this job cannot reach (a developer's `localhost:5000`):
    # MLflow's default retries hold the rebuild for about four minutes before the error lockstep
    # explains; two tries, a second apart, still ride out a blip of the job's own server
    env.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    env.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    if "WANDB_API_KEY" not in env:  # Weights & Biases without its key: the run to a local folder, not an error
        env.setdefault("WANDB_MODE", "offline")
    if mlflow_run_id:
        env[RUN_ID_VARIABLE] = mlflow_run_id
    return env
