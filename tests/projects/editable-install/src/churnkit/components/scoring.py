def accuracy(model, rows):
    return sum((x > model["threshold"]) == bool(y) for x, y in rows) / len(rows)
