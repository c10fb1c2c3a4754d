"""Deterministic data: points in [0, 1], labelled 1 above 0.6 (with noise)."""
import csv
import os
import random

import yaml

params = yaml.safe_load(open("params.yaml"))["prepare"]
rng = random.Random(params["seed"])
os.makedirs("data", exist_ok=True)
for split, size in (("train", 300), ("test", 200)):
    with open(os.path.join("data", split + ".csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        for _ in range(size):
            x = rng.random()
            writer.writerow([round(x, 6), int(x + rng.gauss(0, params["noise"]) > 0.6)])
