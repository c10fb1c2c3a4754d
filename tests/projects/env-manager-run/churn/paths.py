DATA = "data"
MODEL = "models/model.json"
METRICS = "metrics.json"
