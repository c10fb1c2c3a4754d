"""Score the model on the test split."""
import csv
import json
import os

import joblib

model = joblib.load("models/model.joblib")
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/test.csv"))]
predicted = model.predict([[x] for x, _ in rows])
accuracy = sum(int(p) == y for p, (_, y) in zip(predicted, rows)) / len(rows)
os.makedirs("reports", exist_ok=True)
json.dump({"accuracy": accuracy}, open("reports/metrics.json", "w"), indent=2)
