"""`lockstep init`'s choice of gates: one per metric that scores the model, none on what a pull
request legitimately moves (a training-split score, a param written back as a metric, a count)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockstep import adopt, config

# (metrics as `dvc metrics show` names them, params, gates chosen, metrics named as not gated)
CASES = [
    pytest.param(  # DVC's get-started project: avg_prec and roc_auc per split
        {"avg_prec.train": 0.97, "avg_prec.test": 0.92, "roc_auc.train": 0.98, "roc_auc.test": 0.94}, {},
        {"avg_prec.test": "higher", "roc_auc.test": "higher"},
        {"avg_prec.train", "roc_auc.train"}, id="split-keys"),
    pytest.param(  # splits in the metric's own name, lower-is-better kept
        {"accuracy": 0.9, "train_accuracy": 0.95, "val_loss": 0.3, "train_loss": 0.2}, {},
        {"accuracy": "higher", "val_loss": "lower"},
        {"train_accuracy", "train_loss"}, id="split-prefixes"),
    pytest.param(  # one metrics file per split (a `foreach` or `matrix` evaluation)
        {"metrics/train.json:accuracy": 0.9, "metrics/test.json:accuracy": 0.8}, {},
        {"metrics/test.json:accuracy": "higher"},
        {"metrics/train.json:accuracy"}, id="split-files"),
    pytest.param(  # only a training split: it is all there is to gate
        {"acc.train": 0.9}, {}, {"acc.train": "higher"}, set(), id="training-split-only"),
    pytest.param(  # the regression template many projects copy: params echoed into a metrics file
        {"report/scores.json:rmse": 0.7, "report/scores.json:mae": 0.5, "report/scores.json:r2": 0.3,
         "report/params.json:alpha": 0.9, "report/params.json:l1_ratio": 0.4},
        {"estimators.ElasticNet.params.alpha": 0.9, "estimators.ElasticNet.params.l1_ratio": 0.4, "base.random_state": 42},
        {"report/scores.json:mae": "lower", "report/scores.json:r2": "higher", "report/scores.json:rmse": "lower"},
        {"report/params.json:alpha", "report/params.json:l1_ratio"}, id="params-echoed"),
    pytest.param(  # dvclive in DVC's experiments example: the training run's file and the evaluation's, one key each
        {"results/train/metrics.json:train.accuracy": 0.79, "results/train/metrics.json:test.loss": 3.6,
         "results/evaluate/metrics.json:test.accuracy": 0.73},
        {}, {"results/evaluate/metrics.json:test.accuracy": "higher", "results/train/metrics.json:test.loss": "lower"},
        {"results/train/metrics.json:train.accuracy"}, id="split-in-key-and-folder"),
    pytest.param(  # a param's name, another value: a score after all
        {"alpha": 0.5}, {"train.alpha": 0.9}, {"alpha": "higher"}, set(), id="param-name-other-value"),
]


@pytest.mark.parametrize(("metrics", "params", "gates", "not_gated"), CASES)
def test_gates_are_chosen_for_what_scores_the_model(metrics, params, gates, not_gated):
    chosen, skipped = adopt.choose_gates(metrics, params)
    assert chosen == gates
    assert {name for name, _why in skipped} == not_gated


def test_only_what_the_evaluation_writes_is_gated_when_it_is_known():
    """What CI recomputes is what the evaluation stages write: a training run's own metrics file
    (committed as the developer's run left it) is listed, not gated."""
    metrics = {"results/train/metrics.json:test.loss": 3.6, "results/evaluate/metrics.json:test.accuracy": 0.73}
    gates, skipped = adopt.choose_gates(metrics, {}, evaluated={"results/evaluate/metrics.json:test.accuracy"})
    assert gates == {"results/evaluate/metrics.json:test.accuracy": "higher"}
    assert skipped == [("results/train/metrics.json:test.loss", "written by no evaluation stage: CI does not recompute it")]


def test_a_classification_report_gates_its_aggregates_first_and_no_counts():
    report = {"accuracy": 0.9, "model": "xgboost"}
    for group in ("0", "1", "2", "macro avg", "weighted avg"):
        report |= {f"{group}.precision": 0.9, f"{group}.recall": 0.8, f"{group}.f1-score": 0.85, f"{group}.support": 50}
    gates, skipped = adopt.choose_gates(report, {})
    why = dict(skipped)
    assert len(gates) == adopt.MAX_GATES
    assert {"accuracy", "macro avg.f1-score", "weighted avg.recall"} <= set(gates)
    assert why["0.support"] == "a count, not a score" and not any(name.endswith("support") for name in gates)
    assert why["2.recall"].startswith("more than 12 metrics")
    assert "model" not in gates and "model" not in why  # a label, neither gated nor listed


def test_the_metrics_left_ungated_are_listed_in_the_config_it_writes():
    plan = adopt.Plan(project=Path("."), folder=".", label="churn", model_name="churn", model_path="model.pkl",
                      evaluation_stages=["evaluate"], gates={"avg_prec.test": "higher"},
                      not_gated=[("avg_prec.train", "a training-split score; its held-out one is gated")])
    text = adopt.config_text(plan)
    assert "#   avg_prec.train: a training-split score; its held-out one is gated\n" in text
    loaded = config.load_text(text, "lockstep.yaml")
    assert [gate.metric for gate in loaded.gates] == ["avg_prec.test"]


def test_a_score_that_can_be_near_zero_gets_an_absolute_allowance():
    plan = adopt.Plan(project=Path("."), folder=".", label="wine", model_name="wine", model_path="model.joblib",
                      evaluation_stages=["train_and_evaluate"], gates={"report/scores.json:r2": "higher", "report/scores.json:rmse": "lower"})
    loaded = {gate.metric: gate for gate in config.load_text(adopt.config_text(plan), "lockstep.yaml").gates}
    assert "r2\": {direction: higher, max-regression: 0.05}" in adopt.config_text(plan)
    assert "rmse\": {direction: lower, max-regression-relative: 0.05}" in adopt.config_text(plan)
    assert set(loaded) == {"report/scores.json:r2", "report/scores.json:rmse"}
