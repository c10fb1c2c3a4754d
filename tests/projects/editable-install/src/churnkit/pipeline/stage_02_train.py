from churnkit import config
from churnkit.components import data, model

paths, params = config.load()
model.save(model.fit(data.rows(paths["data_dir"], "train"), params["train"]["steps"]), paths["model_path"])
