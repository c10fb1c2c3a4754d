from churnkit import config
from churnkit.components import data

paths, params = config.load()
data.make(paths["data_dir"], params["prepare"]["seed"], params["prepare"]["noise"])
