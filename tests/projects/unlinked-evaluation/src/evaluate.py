"""Score the model on the test split, into metrics.json."""
import csv
import json

threshold = json.load(open("models/model.json"))["threshold"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/test.csv"))]
accuracy = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
json.dump({"accuracy": accuracy}, open("metrics.json", "w"), indent=2)
