"""What every stage shares: where things are, and how the data is read."""
import csv

DATA = "data"
MODEL = "models/model.json"
METRICS = "metrics.json"


def rows(split):
    return [(float(x), int(y)) for x, y in csv.reader(open(f"{DATA}/{split}.csv"))]
