"""A random forest whose leaves may be smaller with more steps."""
import csv
import os
import pickle
import sys

import yaml
from sklearn.ensemble import RandomForestClassifier

data, model_path = sys.argv[1], sys.argv[2]
params = yaml.safe_load(open("params.yaml"))["train"]
rows = [(float(x), int(y)) for x, y in csv.reader(open(os.path.join(data, "train.csv")))]
model = RandomForestClassifier(n_estimators=5, min_samples_leaf=max(1, len(rows) // params["steps"]), random_state=params["seed"])
model.fit([[x] for x, _ in rows], [y for _, y in rows])
with open(model_path, "wb") as handle:
    pickle.dump(model, handle)
