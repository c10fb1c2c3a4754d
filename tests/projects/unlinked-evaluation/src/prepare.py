"""Deterministic data, both splits in one folder: points in [0, 1], labelled 1 above 0.6 (with noise)."""
import argparse
import csv
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
parser.add_argument("--noise", type=float)
args = parser.parse_args()
os.makedirs("data", exist_ok=True)
for split, size in (("train", 300), ("test", 200)):
    rng = random.Random(f"{args.seed}-{split}")
    with open(os.path.join("data", split + ".csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        for _ in range(size):
            x = rng.random()
            writer.writerow([round(x, 6), int(x + rng.gauss(0, args.noise) > 0.6)])
