"""Evaluate models/model.pkl on data/prepared/test.csv: metrics.json and a confusion matrix."""

import csv
import json
import pickle
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["evaluate"]
    test = pd.read_csv("data/prepared/test.csv")
    features, target = test.drop(columns=["target"]), test["target"]
    with Path("models/model.pkl").open("rb") as handle:
        model = pickle.load(handle)
    proba = model.predict_proba(features)[:, 1]
    predicted = (proba >= params["threshold"]).astype(int)
    metrics = {
        "accuracy": round(float(accuracy_score(target, predicted)), 6),
        "f1": round(float(f1_score(target, predicted)), 6),
        "roc_auc": round(float(roc_auc_score(target, proba)), 6),
        "log_loss": round(float(log_loss(target, proba)), 6),
    }
    Path("metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    Path("plots").mkdir(exist_ok=True)
    with Path("plots/confusion.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(target.tolist(), predicted.tolist()))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
