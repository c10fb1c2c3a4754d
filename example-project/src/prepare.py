"""Split the breast cancer dataset that scikit-learn ships into train and test CSV files."""

from pathlib import Path

import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

OUT = Path("data/prepared")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    train, test = train_test_split(
        frame, test_size=params["test_size"], random_state=params["seed"], stratify=frame["target"]
    )
    OUT.mkdir(parents=True, exist_ok=True)
    train.to_csv(OUT / "train.csv", index=False, float_format="%.10g")
    test.to_csv(OUT / "test.csv", index=False, float_format="%.10g")
    print(f"prepared {len(train)} train rows and {len(test)} test rows in {OUT}")


if __name__ == "__main__":
    main()
