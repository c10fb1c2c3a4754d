import json

from churnkit import config
from churnkit.components import data, model, scoring

paths, _params = config.load()
trained = model.load(paths["model_path"])
json.dump({"accuracy": scoring.accuracy(trained, data.rows(paths["data_dir"], "test"))}, open(paths["scores_path"], "w"), indent=2)
