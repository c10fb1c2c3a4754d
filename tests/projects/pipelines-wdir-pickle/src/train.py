"""Fit a logistic regression; more solver iterations fit it better."""
import csv
import os
import tomllib
import warnings

import joblib
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

steps = tomllib.load(open("params.toml", "rb"))["train"]["steps"]
rows = [(float(x), int(y)) for x, y in csv.reader(open("data/train.csv"))]
warnings.simplefilter("ignore", ConvergenceWarning)
model = LogisticRegression(max_iter=steps).fit([[x] for x, _ in rows], [y for _, y in rows])
os.makedirs("models", exist_ok=True)
joblib.dump(model, "models/model.joblib")
