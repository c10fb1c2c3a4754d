"""Learn a threshold by grid search, logging as dvclive does: results/train holds the run's
metrics, its per-step plots and its params, committed to git as they are (no stage outputs them)."""
import csv
import json
import os

import yaml

params = yaml.safe_load(open("params.yaml"))
steps = params["train"]["steps"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/train_data/points.csv"))]
os.makedirs("results/train/plots/metrics", exist_ok=True)
history = []
best = (-1, 0.0)
for i in range(steps + 1):
    correct = sum((x > i / steps) == bool(y) for x, y in rows)
    if correct > best[0]:
        best = (correct, i / steps)
    history.append((i, best[0] / len(rows)))
with open("results/train/plots/metrics/accuracy.tsv", "w") as handle:
    handle.write("step\taccuracy\n" + "".join(f"{step}\t{acc}\n" for step, acc in history))
json.dump({"train": {"accuracy": history[-1][1]}, "step": steps}, open("results/train/metrics.json", "w"), indent=4)
yaml.safe_dump({"steps": steps, "seed": params["base"]["seed"]}, open("results/train/params.yaml", "w"))
os.makedirs("models", exist_ok=True)
json.dump({"threshold": best[1]}, open("models/model.json", "w"))
