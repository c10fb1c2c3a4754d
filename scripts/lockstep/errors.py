"""Errors a person can act on, with distinct, documented exit codes.

Every failure carries what was checked, what was found, where (file and line when known) and what
to do next. `cli.main` turns them into a log line, an annotation and a job-summary section.
"""

from __future__ import annotations

# Exit codes (documented in the README's "Errors" section; tests assert them).
EXIT_OK = 0
EXIT_CHECKS_FAILED = 1  # validation ran and at least one check failed (the report says which)
EXIT_USAGE = 2  # bad command line or workflow inputs
EXIT_CONFIG = 3  # lockstep.yaml missing or invalid
EXIT_DVC = 4  # the DVC project or its remote could not be used
EXIT_GIT = 5  # git failed: fetch, commit, push
EXIT_INPUTS_MOVED = 6  # main moved with changes to the rebuilt stages' inputs: nothing pushed
EXIT_MLFLOW = 7  # MLflow tracking or registry failed where it is required
EXIT_GITHUB = 8  # the GitHub REST API refused or failed
EXIT_ARTIFACT = 9  # a report artifact failed validation (fork-safe comment path)
EXIT_WAIT_TIMEOUT = 10  # `lockstep dispatch --wait`: the run did not finish within --timeout
EXIT_INTERNAL = 70  # a bug in lockstep: please report it


class LockstepError(Exception):
    """Base of all expected failures."""

    exit_code = EXIT_INTERNAL
    title = "lockstep failed"

    def __init__(self, message: str, *, hint: str = "", file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line

    def render(self) -> str:
        text = self.message
        if self.hint:
            text += f"\n{self.hint}"
        return text


class InputError(LockstepError):
    exit_code = EXIT_USAGE
    title = "invalid input"


class ConfigError(LockstepError):
    exit_code = EXIT_CONFIG
    title = "invalid lockstep.yaml"


class DvcError(LockstepError):
    exit_code = EXIT_DVC
    title = "DVC failed"
    undeclared = ""  # a stage failed reading inside this output of another stage, which it does not declare


class GitError(LockstepError):
    exit_code = EXIT_GIT
    title = "git failed"


class InputsMovedError(LockstepError):
    exit_code = EXIT_INPUTS_MOVED
    title = "main moved: inputs of the rebuilt stages changed"


class MlflowError(LockstepError):
    exit_code = EXIT_MLFLOW
    title = "MLflow failed"


class GitHubError(LockstepError):
    exit_code = EXIT_GITHUB
    title = "GitHub API failed"


class ArtifactError(LockstepError):
    exit_code = EXIT_ARTIFACT
    title = "report artifact rejected"


class ChecksFailed(LockstepError):
    exit_code = EXIT_CHECKS_FAILED
    title = "checks failed"


class RunFailed(LockstepError):
    exit_code = EXIT_CHECKS_FAILED
    title = "the dispatched run did not succeed"


class WaitTimeout(LockstepError):
    exit_code = EXIT_WAIT_TIMEOUT
    title = "the dispatched run did not finish in time"
