"""Bad and hostile input at the command line: SHA inputs, errors rendered inert, forged workflow
commands, and YAML that would exhaust time or memory. The CLI runs in-process (`cli.main`)."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from lockstep import cli
from lockstep.errors import EXIT_CONFIG, EXIT_USAGE
from test_comment import assert_inert_html, gfm


@pytest.fixture
def actions(tmp_path, monkeypatch):
    files = {name: tmp_path / name for name in ("output", "summary")}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    return files


def commands(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.lstrip().startswith("::") or "##[" in line]


# --- SHA inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["base-sha", "head-sha"])
@pytest.mark.parametrize("how", ["flag", "input"])
def test_a_sha_input_that_is_an_option_is_refused(tmp_path, monkeypatch, capsys, name, how):
    canary = tmp_path / f"canary-{uuid.uuid4().hex[:8]}"
    value = f"--upload-pack=touch {canary}"
    argv = ["validate", "--working-directory", str(tmp_path)]
    if how == "flag":
        argv.append(f"--{name}={value}")
    else:
        monkeypatch.setenv(f"INPUT_{name.upper().replace('-', '_')}", value)
    assert cli.main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"input '{name}' must be a full commit SHA (40 or 64 hex digits)" in err
    assert not canary.exists()


@pytest.mark.parametrize("value", ["abc123", "g" * 40, "a" * 39, "a" * 41, "a" * 40 + "\n", "HEAD", "main~1"])
def test_short_or_symbolic_shas_are_refused(tmp_path, capsys, value):
    assert cli.main(["comment", "--report-dir", str(tmp_path), "--from-artifact", "true", "--repository", "o/r",
                     "--github-token", "t", f"--head-sha={value}"]) == EXIT_USAGE
    assert "input 'head-sha' must be a full commit SHA" in capsys.readouterr().err


# --- errors are inert in the summary, one line in the output, no forged command in the log --------

HOSTILE_KEY = "<img src=x onerror=alert(1)> [click](https://evil.example) @octocat #1 www.evil.example\n::error ::forged"


def test_error_text_is_inert_in_summary_output_and_log(tmp_path, actions, capsys):
    key = json.dumps(HOSTILE_KEY)
    (tmp_path / "lockstep.yaml").write_text(f"version: 1\n{key}: 1\n{key}: 2\n")  # a duplicate key
    assert cli.main(["check-config", "--working-directory", str(tmp_path)]) == EXIT_CONFIG
    out = capsys.readouterr().out
    # the log: one workflow command, lockstep's own annotation
    (own,) = commands(out)
    assert own.startswith("::error title=lockstep check-config%3A invalid lockstep.yaml,file=")
    # the job summary, as GitHub renders it
    summary = actions["summary"].read_text()
    assert "duplicate key" in summary
    assert_inert_html(gfm(summary))
    # the error output: one line, the value kept readable
    output = actions["output"].read_text()
    assert output.startswith("error=") and output.count("\n") == 1
    assert "<img src=x onerror=alert(1)>" in output


def test_error_text_outside_actions_cannot_forge_commands(tmp_path, capsys):
    (tmp_path / "lockstep.yaml").write_text(f"version: 1\n{json.dumps(HOSTILE_KEY)}: 1\n{json.dumps(HOSTILE_KEY)}: 1\n")
    assert cli.main(["check-config", "--working-directory", str(tmp_path)]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert commands(captured.out + captured.err) == []


# --- YAML that would take minutes or all memory ---------------------------------------------------

LAUGHS = "version: 1\nx:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMBS = {
    "billion laughs": LAUGHS,
    "self-referencing alias": "version: 1\ngates: &g\n  acc: *g\n",
    "self-referencing list": "version: 1\nx: &x [1, *x]\n",
    "6 MB config": "version: 1\ngates:\n" + "".join(f"  metric_{i}: {{min: 0.{i % 10}}}\n" for i in range(250_000)),
    "deep nesting": "version: 1\nx: " + "[" * 50_000 + "]" * 50_000 + "\n",
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_yaml_bombs_are_config_errors_at_once(tmp_path, capsys, case):
    text = BOMBS[case]
    if case == "billion laughs":
        assert len(text.encode()) < 450
    (tmp_path / "lockstep.yaml").write_text(text)
    started = time.monotonic()
    code = cli.main(["check-config", "--working-directory", str(tmp_path)])
    elapsed = time.monotonic() - started
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert re.search(r"lockstep\.yaml(:\d+)?: ", err), err
    assert elapsed < 15, f"{case}: {elapsed:.2f}s"  # unbounded, these ran for minutes; not a speed target
