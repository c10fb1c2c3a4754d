"""Accuracy of the threshold on the collected records."""
import csv
import json

threshold = json.load(open("models/model.json"))["threshold"]
rows = [(float(x), int(y)) for _id, x, y in csv.reader(open("data/records.csv"))]
json.dump({"accuracy": sum((x > threshold) == bool(y) for x, y in rows) / len(rows)}, open("metrics.json", "w"))
