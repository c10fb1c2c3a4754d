"""Score the model on the test split, writing as dvclive's `Live("results/evaluate")` does."""
import csv
import json
import os

threshold = json.load(open("models/model.json"))["threshold"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/test_data/points.csv"))]
accuracy = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
os.makedirs("results/evaluate", exist_ok=True)
json.dump({"test": {"accuracy": accuracy}}, open("results/evaluate/metrics.json", "w"), indent=4)
