"""Deterministic data for one split: points in [0, 1], labelled 1 above 0.6 (with noise)."""
import argparse
import csv
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("split")
parser.add_argument("size", type=int)
parser.add_argument("--seed", type=int)
parser.add_argument("--noise", type=float)
args = parser.parse_args()
rng = random.Random(f"{args.seed}-{args.split}")
os.makedirs("data", exist_ok=True)
with open(os.path.join("data", args.split + ".csv"), "w", newline="") as handle:
    writer = csv.writer(handle)
    for _ in range(args.size):
        x = rng.random()
        writer.writerow([round(x, 6), int(x + rng.gauss(0, args.noise) > 0.6)])
