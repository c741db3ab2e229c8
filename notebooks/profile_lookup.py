# Databricks notebook source
# MAGIC %md
# MAGIC # Look up user profiles
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `conf` | config file naming the tables |
# MAGIC | `snapshot_date` | `YYYY-MM-DD`; empty means the newest snapshot |
# MAGIC | `user_key` | pseudonymous key; empty shows segment and lifecycle counts instead |

# COMMAND ----------

dbutils.widgets.text("conf", "conf/databricks.yaml")  # type: ignore[name-defined]  # noqa: F821
dbutils.widgets.text("snapshot_date", "")  # type: ignore[name-defined]  # noqa: F821
dbutils.widgets.text("user_key", "")  # type: ignore[name-defined]  # noqa: F821
conf = dbutils.widgets.get("conf")  # type: ignore[name-defined]  # noqa: F821
snapshot_date = dbutils.widgets.get("snapshot_date")  # type: ignore[name-defined]  # noqa: F821
user_key = dbutils.widgets.get("user_key")  # type: ignore[name-defined]  # noqa: F821

# COMMAND ----------

from pyspark.sql import functions as F

from userprofile import tables
from userprofile.config import load_settings
from userprofile.session import get_spark

settings = load_settings(conf)
spark = get_spark(settings)
profile = tables.read(spark, tables.resolve(settings, "user_profile"))
if not snapshot_date:
    snapshot_date = str(profile.agg(F.max("snapshot_date")).first()[0])
snapshot = profile.where(F.col("snapshot_date") == F.lit(snapshot_date))

# COMMAND ----------

if user_key:
    snapshot.where(F.col("user_key") == user_key).show(vertical=True, truncate=False)
else:
    snapshot.groupBy("segment_id", "lifecycle_stage").count().orderBy("segment_id").show(50)
