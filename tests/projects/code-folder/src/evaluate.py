"""Score the model on the test split; metrics nested as dvclive and many projects write them."""
import common
import json
import os

threshold = json.load(open("models/model.json"))["threshold"]
scores = {}
for split in ("train", "test"):
    rows = common.rows(split)
    scores[split] = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
os.makedirs(os.path.dirname("metrics.json") or ".", exist_ok=True)
json.dump({"accuracy": scores["test"], "acc": {"train": scores["train"], "test": scores["test"]}}, open("metrics.json", "w"), indent=2)
