"""Diffs, agreement and gates: pure functions."""

from __future__ import annotations

import math

import pytest

from lockstep.config import Gate
from lockstep.metrics import check_gate, diff, disagreements, flatten, parse_file


def test_flatten_nested_metrics_and_lists():
    assert flatten({"test": {"acc": 0.9, "per_class": [0.8, 0.7]}, "loss": 1}) == {
        "test.acc": 0.9, "test.per_class.0": 0.8, "test.per_class.1": 0.7, "loss": 1}
    assert parse_file('{"a": NaN, "b": {"c": 1}}', "m.json")["b.c"] == 1
    assert parse_file("a:\n  b: 2\n", "m.yaml") == {"a.b": 2}


def test_diff_absolute_relative_and_missing_sides():
    rows = {d.name: d for d in diff({"acc": 0.8, "old": 1}, {"acc": 0.9, "new": 2})}
    assert rows["acc"].absolute == pytest.approx(0.1) and rows["acc"].relative == pytest.approx(0.125)
    assert rows["old"].new is None and rows["old"].absolute is None
    assert rows["new"].base is None and rows["new"].changed


@pytest.mark.parametrize(
    ("gate", "value", "base", "passed", "reason"),
    [
        (Gate("acc", min=0.9), 0.95, None, True, ""),
        (Gate("acc", min=0.9), 0.85, None, False, "0.85 is below the minimum 0.9"),
        (Gate("loss", direction="lower", max=0.2), 0.3, None, False, "0.3 is above the maximum 0.2"),
        (Gate("acc", max_regression=0.02), 0.90, 0.93, False, "regressed by 0.03 vs base 0.93 (allowed 0.02)"),
        (Gate("acc", max_regression=0.02), 0.92, 0.93, True, ""),
        (Gate("acc", max_regression=0.0), 0.99, 0.93, True, ""),  # improvements never fail a regression gate
        (Gate("loss", direction="lower", max_regression=0.01), 0.15, 0.10, False, "regressed by 0.05 vs base 0.1"),
        (Gate("loss", direction="lower", max_regression=0.01), 0.05, 0.10, True, ""),
        (Gate("auc", max_regression_relative=0.02), 0.97, 1.0, False, "regressed by 3.00% vs base 1 (allowed 2.00%)"),
        (Gate("auc", max_regression_relative=0.02), 0.99, 1.0, True, ""),
        (Gate("f1"), None, 0.9, False, "required metric is missing from the PR's metrics: no metrics file CI read gives 'f1'. Compare"),
        (Gate("f1", required=False), None, 0.9, True, ""),
        (Gate("f1", min=0.5), math.nan, 0.9, False, "is not a finite number"),
        (Gate("f1", min=0.5), "high", 0.9, False, "is not a finite number"),
        (Gate("f1", min=0.5), True, 0.9, False, "is not a finite number"),  # a bool is not a metric
    ],
)
def test_gates(gate, value, base, passed, reason):
    result = check_gate(gate, value, base)
    assert result.passed is passed
    assert reason in "; ".join(result.reasons)
    if passed:
        assert result.reasons == ()


def test_disagreements_respect_tolerance_and_nan():
    committed = {"acc": 0.9, "f1": 0.8, "nan": math.nan, "name": "x"}
    assert disagreements(committed, {"acc": 0.9 + 1e-12, "f1": 0.8, "nan": math.nan, "name": "x"}, absolute=1e-9, relative=0) == []
    found = disagreements(committed, {"acc": 0.91, "f1": 0.8, "nan": 1.0, "name": "y", "extra": 1}, absolute=1e-9, relative=0)
    assert [d.name for d in found] == ["acc", "extra", "name", "nan"]
    assert disagreements({"acc": 100.0}, {"acc": 100.5}, absolute=0, relative=0.01) == []


def test_a_metric_keeps_its_file_in_its_name_when_the_other_file_could_not_be_read():
    """Two files with the same key name each `file:key`; in a read where one of them could not
    be read (an output not pushed), the other's key would lose its file and its gate find nothing."""
    from lockstep.dvcrepo import MetricsRead, harmonize

    base = MetricsRead(values={"train/metrics.json:acc": 0.8, "eval/metrics.json:acc": 0.7},
                       _origin={"train/metrics.json:acc": "train/metrics.json", "eval/metrics.json:acc": "eval/metrics.json"})
    pr = MetricsRead(values={"acc": 0.75}, problems={"eval/metrics.json": "not in the remote"},
                     _origin={"acc": "train/metrics.json"})
    harmonize(base, pr, None)
    assert pr.values == {"train/metrics.json:acc": 0.75}
    assert pr.source_of("train/metrics.json:acc") == "train/metrics.json"
    assert set(base.values) == {"train/metrics.json:acc", "eval/metrics.json:acc"}  # already qualified: unchanged


PARAMS_PY = '''"""Training settings."""
import pathlib

LR = 0.01
EPOCHS: int = 5
RAN = pathlib.Path({canary!r}).write_text("the file ran")  # code, not a value: left out, never run


class Train:
    optimizer = {{"name": "adam", "beta": 0.9}}
    layers = [64, 32]

    def __init__(self):
        self.seed = 42
'''


def test_a_python_params_file_is_parsed_as_dvc_parses_it_and_never_run(tmp_path):
    """DVC reads `params: - params.py:` with `ast` (module constants, class attributes, `self.x`
    of `__init__`), running nothing: so does lockstep, where it read the file as YAML ({})."""
    canary = tmp_path / "ran"
    values = parse_file(PARAMS_PY.format(canary=str(canary)), "params.py")
    assert values == {"LR": 0.01, "EPOCHS": 5, "Train.optimizer.name": "adam", "Train.optimizer.beta": 0.9,
                      "Train.layers.0": 64, "Train.layers.1": 32, "Train.seed": 42}
    assert not canary.exists()
    assert parse_file("LR = 0.1\n", "config/PARAMS.PY") == {"LR": 0.1}


def test_a_python_params_file_that_is_no_python_or_too_big_is_a_named_load_error():
    from lockstep.metrics import parse_file_or_empty
    from lockstep.safeload import LoadError

    with pytest.raises(LoadError, match=r"^params\.py: not valid Python"):
        parse_file("def (:\n", "params.py")
    with pytest.raises(LoadError, match=r"^params\.py: not valid Python"):
        parse_file("X = " + "[" * 5000 + "]" * 5000 + "\n", "params.py")
    with pytest.raises(LoadError, match="over the 2000000-byte limit"):
        parse_file("X = 1\n" * 400_000, "params.py")
    assert parse_file_or_empty("def (:\n", "params.py") == {}


@pytest.mark.parametrize(("text", "name"), [('{"acc": {"test": 0.9}}', "metrics.JSON"), ("[acc]\ntest = 0.9\n", "Params.TOML"),
                                            ("acc:\n  test: 0.9\n", "metrics.YML")])
def test_a_file_s_suffix_chooses_its_parser_in_any_case(text, name):
    assert parse_file(text, name) == {"acc.test": 0.9}
