import yaml


def load():
    return yaml.safe_load(open("config.yaml")), yaml.safe_load(open("params.yaml"))
