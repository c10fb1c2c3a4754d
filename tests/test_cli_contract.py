"""The command line's own contract: every option explained, and every composite action wired to
options and outputs that its command really has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from lockstep import cli

from conftest import ROOT

pytestmark = pytest.mark.unit


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options(command: argparse.ArgumentParser) -> dict[str, str | None]:
    return {opt[2:]: action.help for action in command._actions for opt in action.option_strings
            if opt.startswith("--") and opt != "--help"}


def test_every_option_of_every_command_has_a_help_text():
    commands = _commands()
    assert set(commands) == set(cli.COMMANDS)
    missing = [f"{name} --{option}" for name, command in commands.items()
               for option, text in _options(command).items() if not (text or "").strip()]
    assert missing == []
    assert all(command.description for command in commands.values())


def test_help_texts_name_only_real_options():
    used = {option for _func, _help, options in cli.COMMANDS.values() for option in options}
    assert set(cli.OPTION_HELP) == used


def test_command_help_lists_each_option_with_its_text(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["rollback", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--alias VALUE the alias to move (default: champion)" in text


# --- composite actions vs the CLI ---------------------------------------------------------------

ACTIONS = sorted((ROOT / "actions").glob("*/action.yml"))
RUN = re.compile(r"^\s*(?:exec\s+)?lockstep\s+([a-z-]+)\b", re.MULTILINE)
STEP_OUTPUT = re.compile(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")


def _lockstep_steps(action: Path) -> list[tuple[str, dict]]:
    steps = yaml.safe_load(action.read_text())["runs"].get("steps", [])
    return [(match.group(1), step) for step in steps for match in [RUN.search(step.get("run", ""))] if match]


def _input_name(env_key: str) -> str:
    return env_key[len("INPUT_"):].lower().replace("_", "-")


def action_outputs(name: str) -> set[str]:
    """The output keys that actions/<name>/action.yml reads from its `lockstep` step. The in-process
    tests of each command assert that a successful run writes every one of them."""
    action = ROOT / "actions" / name / "action.yml"
    data = yaml.safe_load(action.read_text())
    step_ids = {step.get("id") for _command, step in _lockstep_steps(action)}
    return {key for output in (data.get("outputs") or {}).values()
            for step_id, key in STEP_OUTPUT.findall(str(output.get("value", ""))) if step_id in step_ids}


def test_actions_that_run_lockstep_are_found():
    found = {action.parent.name: [command for command, _ in _lockstep_steps(action)] for action in ACTIONS}
    assert found["validate"] == ["validate"] and found["rebuild"] == ["rebuild"]
    assert found["comment"] == ["comment"] and found["rollback"] == ["rollback"]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.parent.name)
def test_action_inputs_are_options_of_its_command(action):
    commands = _commands()
    for command, step in _lockstep_steps(action):
        options = set(_options(commands[command]))
        env = {key: value for key, value in (step.get("env") or {}).items() if key.startswith("INPUT_")}
        inputs = {_input_name(key) for key in env}
        assert inputs, f"{action}: the lockstep {command} step maps no input"
        assert inputs - options == set(), f"{action}: INPUT_* that `lockstep {command}` does not read"
        for key, value in env.items():  # INPUT_FOO_BAR carries inputs.foo-bar, not another input
            assert value == "${{ inputs.%s }}" % _input_name(key), f"{action}: {key}: {value}"
        declared = set(yaml.safe_load(action.read_text()).get("inputs") or {})
        assert inputs <= declared, f"{action}: env reads inputs the action does not declare"


def test_action_outputs_are_found():
    """What the in-process tests compare with the keys a run writes (test_inprocess_*.py)."""
    assert action_outputs("validate") == {"passed", "report-path", "results-path", "report-dir", "mlflow-run-id"}
    assert {"lock-commit", "model-version", "model-uri", "promoted"} <= action_outputs("rebuild")
    assert action_outputs("comment") == {"comment-id", "created"}
    assert action_outputs("rollback") == {"model-version", "previous-version", "lock-commit"}


def test_the_readme_init_command_uses_real_options():
    import re
    import shlex

    from lockstep.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = re.search(r"^(lockstep init .*)$", readme, re.M)
    assert line, "the README's adoption section shows `lockstep init`"
    args = build_parser().parse_args(shlex.split(line.group(1))[1:])
    assert args.command == "init" and args.library == "OWNER/lockstep@v1"


@pytest.mark.parametrize("argv", [["-m", "lockstep"], ["-c", "from lockstep.cli import entry; entry()"]])
def test_the_command_exits_with_the_code_main_returns(tmp_path, argv):
    """`python -m lockstep` and the installed `lockstep` script (`cli.entry`) exit with main's code,
    after the garbage collector is told to leave the process's objects alone (`gc.freeze`)."""
    import subprocess
    import sys

    from lockstep.errors import EXIT_CONFIG, EXIT_OK

    (tmp_path / "lockstep.yaml").write_text("version: 1\nversion: 2\n")  # a duplicate key
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "scripts")}
    bad = subprocess.run([sys.executable, *argv, "check-config", "--working-directory", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == EXIT_CONFIG, bad.stdout + bad.stderr
    assert "duplicate key" in bad.stdout + bad.stderr
    good = subprocess.run([sys.executable, *argv, "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert (good.returncode, good.stdout.split()[0]) == (EXIT_OK, "lockstep")


def test_the_installed_script_runs_entry():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^lockstep = "lockstep\.cli:entry"$', text, re.M)
