# Databricks notebook source
# MAGIC %md
# MAGIC # Look up a user's profile
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `conf` | config file naming the tables |
# MAGIC | `snapshot_date` | `YYYY-MM-DD`; empty means the newest snapshot |
# MAGIC | `user` | a raw user id (needs the pseudonymisation key) or a `user_key` |
# MAGIC | `id_kind` | `raw user id` or `user_key` |
# MAGIC
# MAGIC Prints the profile with each tag's rule, its verdict and the values it read, the
# MAGIC lifecycle rule in words, RFM, value and provenance (`userprofile lookup`).

# COMMAND ----------

dbutils.widgets.text("conf", "../conf/databricks.yaml")
dbutils.widgets.text("snapshot_date", "")
dbutils.widgets.text("user", "")
dbutils.widgets.dropdown("id_kind", "raw user id", ["raw user id", "user_key"])
conf = dbutils.widgets.get("conf")
snapshot_date = dbutils.widgets.get("snapshot_date")
user = dbutils.widgets.get("user")
pseudonymous = dbutils.widgets.get("id_kind") == "user_key"

# COMMAND ----------

from userprofile.cli import main
from userprofile.config import load_settings
from userprofile.io.context import RunContext
from userprofile.io.session import get_spark
from userprofile.report.step import newest_snapshot

assert user, "set the `user` widget to a user id or user_key"
settings = load_settings(conf)
as_of = snapshot_date or str(newest_snapshot(RunContext(get_spark(settings), settings)))
args = ["lookup", user, "--conf", conf, "--as-of", as_of]
exit_code = main(args + (["--pseudonymous"] if pseudonymous else []))
assert exit_code == 0, f"lookup failed with exit code {exit_code}; see the message above"
