"""Score the model on both splits, from the evaluation's own folder."""
import csv
import json

threshold = json.load(open("../models/model.json"))["threshold"]
scores = {}
for split in ("train", "test"):
    rows = [(float(x), int(y)) for x, y in csv.reader(open("../data/" + split + ".csv"))]
    scores[split] = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
json.dump({"auc": scores}, open("scores.json", "w"))
