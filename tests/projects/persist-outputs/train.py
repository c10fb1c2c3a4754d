"""Learn a threshold by grid search; resume the run's history from the checkpoint if there is one."""
import csv
import json
import os

import yaml

train = yaml.safe_load(open("params.yaml"))["train"]
state = json.load(open("checkpoints/state.json")) if os.path.exists("checkpoints/state.json") else {}
rows = [(float(x), int(y)) for _id, x, y in csv.reader(open("data/records.csv"))]
best = max((sum((x > i / train["steps"]) == bool(y) for x, y in rows), -i, i / train["steps"]) for i in range(train["steps"] + 1))
state = {"runs": state.get("runs", 0) + 1, "marker": state.get("marker", "")}  # the marker is carried over
os.makedirs("checkpoints", exist_ok=True)
json.dump(state, open("checkpoints/state.json", "w"))
os.makedirs("models", exist_ok=True)
json.dump({"threshold": best[2], **state}, open("models/model.json", "w"))
