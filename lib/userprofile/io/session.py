"""The one place that builds a SparkSession.

Under Databricks or spark-submit a session (or its JVM gateway) already exists:
reuse it and leave cluster settings alone. Anywhere else build an embedded
``local[*]`` session with Delta configured from pip (the Delta jars resolve
through Spark's own resolver, which also reads ~/.m2 and caches in ~/.ivy2*).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from userprofile.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def get_spark(settings: Settings) -> SparkSession:
    """Return the active session if there is one, else a local one with Delta."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None and (_launched_by_spark_submit() or on_databricks()):
        active = SparkSession.builder.appName(settings.spark.app_name).getOrCreate()
    if active is not None:
        _apply_runtime_settings(active, settings)
        return active
    return _local_session(settings)


def on_databricks() -> bool:
    """A Databricks runtime (job task or notebook): the session belongs to the cluster."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def owns_session() -> bool:
    """Whether this process may stop the session when done (not a notebook's or a cluster's)."""
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() is None and not on_databricks()


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands Python its gateway port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _apply_runtime_settings(spark: SparkSession, settings: Settings) -> None:
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))


def _local_session(settings: Settings) -> SparkSession:
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(settings.spark.master).appName(settings.spark.app_name)
    for key, value in local_spark_conf(settings).items():
        builder = builder.config(key, value)
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def local_spark_conf(settings: Settings) -> dict[str, str]:
    """Settings for an embedded session: small, quiet, UTC, Delta on."""
    conf = {
        **DELTA_SETTINGS,
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        # Path tables need no metastore; keep Derby files out of the working directory.
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": os.path.join(
            os.path.abspath(settings.storage.warehouse), "_spark_sql"
        ),
        # Delta's log replay defaults to 50 partitions, far too many on a laptop.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.adaptive.enabled": "true",
        # File listing (VACUUM, partition discovery) defaults to 10,000 parallel tasks.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
        "spark.driver.extraJavaOptions": "-Dderby.system.home=/tmp/userprofile-derby",
    }
    conf.update(settings.spark.conf)
    return conf
