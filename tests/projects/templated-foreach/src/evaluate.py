"""Score the model on one split, into metrics/<split>.json."""
import csv
import json
import os
import sys

split = sys.argv[1]
threshold = json.load(open("models/model.json"))["threshold"]
rows = [(float(x), int(y)) for x, y in csv.reader(open(f"data/{split}.csv"))]
os.makedirs("metrics", exist_ok=True)
accuracy = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
json.dump({"accuracy": accuracy}, open(f"metrics/{split}.json", "w"), indent=2)
