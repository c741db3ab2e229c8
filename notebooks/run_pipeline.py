# Databricks notebook source
# MAGIC %md
# MAGIC # Run the user-profile pipeline for one snapshot date
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `conf` | config file, e.g. `conf/databricks.yaml` (tables as `catalog.schema.table`) |
# MAGIC | `as_of` | snapshot date `YYYY-MM-DD`: features use events before 00:00 UTC of it |
# MAGIC
# MAGIC Needs the `userprofile` wheel on the cluster and the pseudonymisation key in the
# MAGIC environment variable the config names (from a secret scope).

# COMMAND ----------

dbutils.widgets.text("conf", "conf/databricks.yaml")  # type: ignore[name-defined]  # noqa: F821
dbutils.widgets.text("as_of", "")  # type: ignore[name-defined]  # noqa: F821
conf = dbutils.widgets.get("conf")  # type: ignore[name-defined]  # noqa: F821
as_of = dbutils.widgets.get("as_of")  # type: ignore[name-defined]  # noqa: F821

# COMMAND ----------

from userprofile.cli import main

args = ["pipeline", "--conf", conf] + (["--as-of", as_of] if as_of else [])
exit_code = main(args)
assert exit_code == 0, f"pipeline failed with exit code {exit_code}; see the message above"
