"""The GitHub Actions I/O module: outputs, annotations, summary, inputs."""

from __future__ import annotations

import pytest

from lockstep import gha
from lockstep.errors import InputError


@pytest.fixture
def actions(tmp_path, monkeypatch):
    files = {name: tmp_path / name for name in ("output", "summary", "path")}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_PATH", str(files["path"]))
    return files


def test_single_and_multiline_outputs(actions):
    gha.set_output("passed", True)
    gha.set_output("report", "line 1\nlatest=forged\nline 3")
    text = actions["output"].read_text()
    assert text.startswith("passed=true\nreport<<ghadelimiter_")
    delimiter = text.split("report<<", 1)[1].split("\n", 1)[0]
    assert text.endswith(f"\nline 1\nlatest=forged\nline 3\n{delimiter}\n")
    assert len(delimiter) == len("ghadelimiter_") + 32


def test_annotation_escapes_properties_and_newlines(actions, capsys):
    gha.error("first\nsecond 100%", file="a,b:c.yaml", line=4, title="t: x")
    out = capsys.readouterr().out
    assert out == "::error title=t%3A x,file=a%2Cb%3Ac.yaml,line=4::first%0Asecond 100%25\n"


def test_a_message_cannot_forge_a_workflow_command(actions, capsys):
    gha.error("boom\n::add-mask::nothing")
    assert capsys.readouterr().out.count("\n") == 1


def test_summary_appends(actions):
    gha.add_summary("# one")
    gha.add_summary("two\n")
    assert actions["summary"].read_text() == "# one\ntwo\n"


def test_outside_actions_the_calls_print(monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    gha.error("broken", file="lockstep.yaml", line=3)
    gha.set_output("x", "1")
    captured = capsys.readouterr()
    assert captured.err == "error: lockstep.yaml:3: broken\n"
    assert captured.out == "output x=1\n"


def test_inputs_read_both_spellings_and_defaults(monkeypatch):
    monkeypatch.setenv("INPUT_WORKING-DIRECTORY", " project ")
    monkeypatch.setenv("INPUT_TEST_COMMAND", "")
    assert gha.get_input("working-directory") == "project"
    assert gha.get_input("test-command", "pytest") == "pytest"
    monkeypatch.setenv("INPUT_FORCE_ALL", "yes")
    assert gha.get_bool_input("force-all") is True
    monkeypatch.setenv("INPUT_FORCE_ALL", "perhaps")
    with pytest.raises(InputError, match="input 'force-all' must be true or false, got 'perhaps'"):
        gha.get_bool_input("force-all")


def test_invalid_utf8_never_reaches_the_log(actions, capsys):
    gha.info("metric \udcff name")
    assert capsys.readouterr().out == "metric ? name\n"


def test_mask_each_line(actions, capsys):
    gha.mask("secret-one\nsecret-two")
    assert capsys.readouterr().out == "::add-mask::secret-one\n::add-mask::secret-two\n"


FORGED = "data/x\n::error ::forged\n  ::add-mask::secret\r::stop-commands::tok\n::set-output name=a::b ##[error]legacy"


def _commands(out: str) -> list[str]:
    """The lines the runner would take as workflow commands (`::` after leading space; `##[` anywhere)."""
    return [line for line in out.splitlines() if line.lstrip().startswith("::") or "##[" in line]


def test_untrusted_lines_cannot_start_workflow_commands(actions, capsys):
    gha.info(f"missing from s3://bucket: {FORGED}")
    with gha.group(FORGED):
        gha.info(FORGED)
    gha.warning(FORGED, title=FORGED, file=FORGED)
    out = capsys.readouterr().out
    assert [line.split("::")[1].split(" ")[0] for line in _commands(out)] == ["group", "endgroup", "warning"]
    assert ": :error ::forged" in out and "# #[error]legacy" in out  # still readable
    # lockstep's own annotation escapes %, CR, LF in the message and also : and , in properties
    (warning,) = [line for line in out.splitlines() if line.startswith("::warning")]
    assert "title=data/x%0A%3A%3Aerror %3A%3Aforged" in warning and "%0D%3A%3Astop-commands%3A%3Atok" in warning


def test_untrusted_lines_are_neutralised_outside_actions_too(capsys):
    gha.error(FORGED)
    gha.set_output("x", FORGED)
    captured = capsys.readouterr()
    assert _commands(captured.out + captured.err) == []


def test_one_line():
    assert gha.one_line("a\n::error::x\r\tb", 100) == "a ::error::x b"
    assert len(gha.one_line("y" * 5000)) == 1000
