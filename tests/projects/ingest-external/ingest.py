"""Copy the newest export from where the data pipeline leaves it (INGEST_SOURCE)."""
import os
import shutil

os.makedirs("data", exist_ok=True)
shutil.copyfile(os.environ["INGEST_SOURCE"], "data/raw.csv")
