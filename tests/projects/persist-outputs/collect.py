"""Add the records of the newest export (INGEST_SOURCE: `id,x,label` rows) that are not collected yet."""
import csv
import os

os.makedirs("data", exist_ok=True)
seen = set()
if os.path.exists("data/records.csv"):
    seen = {row[0] for row in csv.reader(open("data/records.csv"))}
new = [row for row in csv.reader(open(os.environ["INGEST_SOURCE"])) if row and row[0] not in seen]
with open("data/records.csv", "a", newline="") as handle:
    csv.writer(handle).writerows(new)
print(f"collected {len(new)} new record(s), {len(seen) + len(new)} in all")
