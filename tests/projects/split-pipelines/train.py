"""Learn a threshold by grid search; more steps find a better one. Writes the training run's own
metrics beside it, as a training logger does (training/metrics.json, carried by git)."""
import csv
import json
import os

import yaml

train = yaml.safe_load(open("params.yaml"))["train"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/train.csv"))]
best = max((sum((x > i / train["steps"]) == bool(y) for x, y in rows), -i, i / train["steps"]) for i in range(train["steps"] + 1))
os.makedirs("models", exist_ok=True)
json.dump({"threshold": best[2]}, open("models/model.json", "w"))
os.makedirs("training", exist_ok=True)
json.dump({"fit": {"correct": best[0], "candidates": train["steps"] + 1}}, open("training/metrics.json", "w"))
