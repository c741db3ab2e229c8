# Databricks notebook source
# MAGIC %md
# MAGIC # Run the user-profile pipeline for one snapshot date
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `conf` | config file, e.g. `../conf/databricks.yaml` (tables as `catalog.schema.table`) |
# MAGIC | `as_of` | snapshot date `YYYY-MM-DD`: features use events before 00:00 UTC of it; empty: today (UTC) |
# MAGIC | `retrain_after_days` | reuse the newest models unless they are this many days older than the snapshot; `0` always trains |
# MAGIC | `redo` | `no` skips the date if its last run succeeded; `yes` runs it again |
# MAGIC
# MAGIC Needs the `userprofile` wheel on the cluster and the pseudonymisation key in the
# MAGIC environment variable the config names (from a secret scope). `conf/databricks.yaml`
# MAGIC also reads `USERPROFILE_CATALOG`, `USERPROFILE_SCHEMA` and `USERPROFILE_VOLUME` from the
# MAGIC cluster's environment, as the bundle's job cluster sets them.

# COMMAND ----------

dbutils.widgets.text("conf", "../conf/databricks.yaml")
dbutils.widgets.text("as_of", "")
dbutils.widgets.text("retrain_after_days", "7")
dbutils.widgets.dropdown("redo", "no", ["no", "yes"])
conf = dbutils.widgets.get("conf")
as_of = dbutils.widgets.get("as_of")
retrain_after_days = dbutils.widgets.get("retrain_after_days")
redo = dbutils.widgets.get("redo") == "yes"

# COMMAND ----------

import datetime as dt

from userprofile.cli import main

day = as_of or dt.datetime.now(dt.timezone.utc).date().isoformat()
# One date as a range of one: a date whose last run succeeded is skipped unless redone.
args = ["pipeline", "--conf", conf, "--from", day, "--to", day]
args += ["--retrain-after-days", retrain_after_days] + (["--force"] if redo else [])
exit_code = main(args)
assert exit_code == 0, f"pipeline failed with exit code {exit_code}; see the message above"

# COMMAND ----------

# MAGIC %md
# MAGIC The runs of this date, newest first (`ops/pipeline_runs`): steps, seconds, row counts, errors.

# COMMAND ----------

from pyspark.sql import functions as F

from userprofile.config import load_settings
from userprofile.io import tables
from userprofile.io.session import get_spark

settings = load_settings(conf)
spark = get_spark(settings)
runs = (
    tables.read(spark, tables.resolve(settings, "pipeline_runs"))
    .where(F.col("as_of") == F.lit(day))
    .orderBy(F.col("finished_at").desc())
)
latest_run = runs.first()
runs.select("run_id", "status", "steps", "step_seconds", "error", "finished_at").toPandas()
