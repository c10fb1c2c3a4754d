"""Train a random forest on data/prepared/train.csv and save it to models/model.pkl.

When MLFLOW_TRACKING_URI or LOCKSTEP_MLFLOW_RUN_ID is set (lockstep offers its run in CI rebuilds),
the params, the training metrics and the model are logged to that MLflow run.
"""

import os
import pickle
from pathlib import Path

import pandas as pd
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score

MODEL = Path("models/model.pkl")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["train"]
    train = pd.read_csv("data/prepared/train.csv")
    features, target = train.drop(columns=["target"]), train["target"]
    model = RandomForestClassifier(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"],
        random_state=params["seed"],
        n_jobs=1,
    )
    model.fit(features, target)
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    with MODEL.open("wb") as handle:
        pickle.dump(model, handle, protocol=5)
    train_accuracy = accuracy_score(target, model.predict(features))
    print(f"trained {params['n_estimators']} trees, train accuracy {train_accuracy:.4f}")

    if os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("LOCKSTEP_MLFLOW_RUN_ID"):
        log_to_mlflow(model, params, train_accuracy, features)


def log_to_mlflow(model, params, train_accuracy, features) -> None:
    import mlflow  # imported only when asked for: training works without MLflow

    with mlflow.start_run(run_id=os.environ.get("LOCKSTEP_MLFLOW_RUN_ID")):
        mlflow.log_params({f"train.{key}": value for key, value in params.items()})
        mlflow.log_metric("train_accuracy", train_accuracy)
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            input_example=features.head(2),
            pip_requirements=["scikit-learn", "pandas", "cloudpickle"],
        )


if __name__ == "__main__":
    main()
