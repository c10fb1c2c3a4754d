"""Metrics, ROC points per split and an image, written into eval/ as dvclive would lay them out."""
import csv
import json
import os
import pickle
import sys
import zlib

model_path, data = sys.argv[1], sys.argv[2]
model = pickle.load(open(model_path, "rb"))
metrics = {}
for split in ("train", "test"):
    rows = [(float(x), int(y)) for x, y in csv.reader(open(os.path.join(data, split + ".csv")))]
    scores = model.predict_proba([[x] for x, _ in rows])[:, 1]
    predicted = model.predict([[x] for x, _ in rows])
    metrics[split] = sum(int(p) == y for p, (_, y) in zip(predicted, rows)) / len(rows)
    positives = sum(y for _, y in rows) or 1
    negatives = (len(rows) - positives) or 1
    roc = []
    for threshold in (0.0, 0.25, 0.5, 0.75, 1.0):
        tp = sum(s >= threshold and y for s, (_, y) in zip(scores, rows))
        fp = sum(s >= threshold and not y for s, (_, y) in zip(scores, rows))
        roc.append({"fpr": fp / negatives, "tpr": tp / positives, "threshold": threshold})
    os.makedirs("eval/plots/sklearn/roc", exist_ok=True)
    json.dump({"roc": roc}, open(f"eval/plots/sklearn/roc/{split}.json", "w"), indent=2)
json.dump({"accuracy": metrics["test"], "train_accuracy": metrics["train"]}, open("eval/metrics.json", "w"), indent=2)


def chunk(kind, body):
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


# a 1x1 grey PNG whose shade is the test accuracy
shade = int(metrics["test"] * 255)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0]))
png += chunk(b"IDAT", zlib.compress(bytes([0, shade]))) + chunk(b"IEND", b"")
open("eval/importance.png", "wb").write(png)
