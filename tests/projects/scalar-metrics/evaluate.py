"""Score the model on the test split: the accuracy alone in metrics.txt (a bare number), and a
one-row CSV report, as many projects write them."""
import csv
import json

threshold = json.load(open("models/model.json"))["threshold"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/test.csv"))]
accuracy = sum((x > threshold) == bool(y) for x, y in rows) / len(rows)
with open("metrics.txt", "w") as handle:
    handle.write(f"{accuracy}\n")
with open("report.csv", "w") as handle:
    handle.write(f"accuracy,rows\n{accuracy},{len(rows)}\n")
