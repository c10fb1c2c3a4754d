"""Deterministic data: points in [0, 1], labelled 1 above 0.6 (with noise)."""
import csv
import os
import random


def make(data_dir, seed, noise):
    rng = random.Random(seed)
    os.makedirs(data_dir, exist_ok=True)
    for split, size in (("train", 300), ("test", 200)):
        with open(os.path.join(data_dir, split + ".csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            for _ in range(size):
                x = rng.random()
                writer.writerow([round(x, 6), int(x + rng.gauss(0, noise) > 0.6)])


def rows(data_dir, split):
    return [(float(x), int(y)) for x, y in csv.reader(open(os.path.join(data_dir, split + ".csv")))]
