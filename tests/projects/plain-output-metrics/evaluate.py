"""Score the model on the test split; the scores are a plain output (`outs:`), not `metrics:`."""
import csv
import json
import os

threshold = json.load(open("models/model.json"))["threshold"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/test.csv"))]
os.makedirs("eval", exist_ok=True)
json.dump({"accuracy": sum((x > threshold) == bool(y) for x, y in rows) / len(rows)}, open("eval/metrics.json", "w"))
