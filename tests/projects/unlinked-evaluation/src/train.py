"""Learn a threshold by grid search; more steps find a better one."""
import argparse
import csv
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("data")
parser.add_argument("--steps", type=int)
args = parser.parse_args()
rows = [(float(x), int(y)) for x, y in csv.reader(open(args.data))]
best = max((sum((x > i / args.steps) == bool(y) for x, y in rows), -i, i / args.steps) for i in range(args.steps + 1))
os.makedirs("models", exist_ok=True)
json.dump({"threshold": best[2]}, open("models/model.json", "w"))
