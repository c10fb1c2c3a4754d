"""Split a deterministic pool of points in [0, 1], labelled 1 above 0.6 (with noise)."""
import csv
import os
import random

import yaml

params = yaml.safe_load(open("params.yaml"))
rng = random.Random(params["base"]["seed"])
rows = []
for _ in range(500):
    x = rng.random()
    rows.append([round(x, 6), int(x + rng.gauss(0, params["data_split"]["noise"]) > 0.6)])
cut = int(len(rows) * (1 - params["data_split"]["test_pct"]))
for folder, part in (("data/train_data", rows[:cut]), ("data/test_data", rows[cut:])):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "points.csv"), "w", newline="") as handle:
        csv.writer(handle).writerows(part)
