"""The package's console scripts, declared in pyproject.toml's [tool.poetry.scripts]: a developer's
`poetry install` puts `churn-train` on the PATH of `poetry run`."""
import runpy


def train() -> None:
    runpy.run_module("churn.train", run_name="__main__")
