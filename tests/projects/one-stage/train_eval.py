"""Learn a threshold by grid search; more steps find a better one."""
import csv
import json
import os

import yaml

train = yaml.safe_load(open("params.yaml"))["train"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/train.csv"))]
best = max((sum((x > i / train["steps"]) == bool(y) for x, y in rows), -i, i / train["steps"]) for i in range(train["steps"] + 1))
os.makedirs(os.path.dirname("model/model.json") or ".", exist_ok=True)
json.dump({"threshold": best[2]}, open("model/model.json", "w"))

import csv
import json
import os

threshold = json.load(open("model/model.json"))["threshold"]
scores = {}
for split in ("train", "test"):
    rows = [(float(x), int(y)) for x, y in csv.reader(open("data/" + split + ".csv"))]
    scores[split] = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
os.makedirs(os.path.dirname("metrics.json") or ".", exist_ok=True)
json.dump({"accuracy": scores["test"], "acc": {"train": scores["train"], "test": scores["test"]}}, open("metrics.json", "w"), indent=2)
