# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the segments of a snapshot
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `conf` | config file naming the tables |
# MAGIC | `snapshot_date` | `YYYY-MM-DD`; empty means the newest snapshot |
# MAGIC
# MAGIC The same figures as `userprofile report`, one per cell. Everything is aggregated by
# MAGIC Spark; the scatter plots a sample of at most 3,000 users.

# COMMAND ----------

dbutils.widgets.text("conf", "../conf/databricks.yaml")
dbutils.widgets.text("snapshot_date", "")
conf = dbutils.widgets.get("conf")
snapshot_date = dbutils.widgets.get("snapshot_date")

# COMMAND ----------

import datetime as dt

from userprofile.config import load_settings
from userprofile.io.context import RunContext
from userprofile.io.session import get_spark
from userprofile.report import render as report
from userprofile.report.step import newest_snapshot, report_data

settings = load_settings(conf)
ctx = RunContext(get_spark(settings), settings)
as_of = dt.date.fromisoformat(snapshot_date) if snapshot_date else newest_snapshot(ctx)
data = report_data(ctx, as_of)
names = dict(zip(data.segments["segment_id"], data.segments["segment_name"], strict=True))
data.segments

# COMMAND ----------

# MAGIC %md
# MAGIC Sizes and centres (medians of the trained segments; colour: above or below the other segments).

# COMMAND ----------

segments_figure = report.segments_figure(data.segments)
segments_figure

# COMMAND ----------

# MAGIC %md
# MAGIC Sampled users on two principal components of the segmentation inputs.

# COMMAND ----------

projection_figure = report.projection_figure(data.projection, names, data.explained_variance)
projection_figure

# COMMAND ----------

propensity_figure = report.propensity_figure(data.roc, data.lift, data.model_quality)
propensity_figure

# COMMAND ----------

lifecycle_figure = report.lifecycle_figure(data.transitions)
lifecycle_figure

# COMMAND ----------

# MAGIC %md
# MAGIC Drift against the previous snapshot (PSI per feature; empty on the first snapshot).

# COMMAND ----------

drift_table = [(d.feature, round(d.psi, 3), d.verdict) for d in data.drift]
drift_table
