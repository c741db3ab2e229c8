"""The one place that builds a SparkSession.

Under Databricks or spark-submit a session (or its JVM gateway) already exists:
reuse it and leave cluster settings alone. Given a Spark Connect URL
(``--remote sc://host:port`` or the standard ``SPARK_REMOTE``), connect to that
server: Delta must be configured on the server, as Databricks serverless and
standard-access clusters do. Anywhere else build an embedded ``local[*]``
session with Delta configured from pip (the Delta jars resolve through Spark's
own resolver, which also reads ~/.m2 and caches in ~/.ivy2*).

Nothing in the package touches ``SparkContext``, the JVM gateway or RDDs, so
every step runs the same over Spark Connect and a classic session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from userprofile.config import Settings
from userprofile.errors import ConfigError
from userprofile.io import locations

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def get_spark(settings: Settings, remote: str | None = None) -> SparkSession:
    """The active session if there is one; a Spark Connect session for ``remote`` (or
    ``SPARK_REMOTE``); else a local one with Delta."""
    from pyspark.sql import SparkSession

    remote = remote or os.environ.get("SPARK_REMOTE")
    if remote:
        return _connect(settings, remote)
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


def is_connect(spark: SparkSession) -> bool:
    """Whether the session is a Spark Connect client (no SparkContext, no JVM in-process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _connect(settings: Settings, remote: str) -> SparkSession:
    from pyspark.sql import SparkSession

    if not remote.startswith("sc://"):
        raise ConfigError(
            f"--remote / SPARK_REMOTE {remote!r}: a Spark Connect URL is sc://host:port"
        )
    if os.environ.get("SPARK_CONNECT_LOG_LEVEL", "").lower() == "debug":
        # The client then logs each request whole, with the pseudonym function and its key.
        raise ConfigError(
            "SPARK_CONNECT_LOG_LEVEL=debug logs every Spark Connect request in full, "
            "including the pseudonymisation function and its key: unset it (or use info)"
        )
    spark = SparkSession.builder.remote(remote).getOrCreate()
    _apply_runtime_settings(spark, settings)
    return spark


# A large batch's shuffles get one partition per this many rows (~64 MB of shuffled events):
# a few huge partitions would exhaust a small heap when cached.
ROWS_PER_SHUFFLE_PARTITION = 500_000
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


def partitions_for(rows: int, configured: int) -> int:
    """Shuffle partitions for ``rows``: the configured number, more when the rows need them."""
    return max(configured, -(-rows // ROWS_PER_SHUFFLE_PARTITION))


@contextmanager
def shuffle_sized_for(spark: SparkSession, rows: int) -> Iterator[int | None]:
    """Plan this block's shuffles with enough partitions for ``rows``; restored afterwards.

    AQE coalesces small shuffle partitions but never splits the configured number, so a
    batch far larger than usual needs more from the start. A setting that is not a number
    is left alone (None).
    """
    before = spark.conf.get(SHUFFLE_PARTITIONS) or "200"
    if not before.isdigit():  # e.g. Databricks' "auto": the platform sizes shuffles itself
        yield None
        return
    partitions = partitions_for(rows, int(before))
    spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
    try:
        yield partitions
    finally:
        spark.conf.set(SHUFFLE_PARTITIONS, before)


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands Python its gateway port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _apply_runtime_settings(spark: SparkSession, settings: Settings) -> None:
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set(SHUFFLE_PARTITIONS, str(settings.spark.shuffle_partitions))


def _local_session(settings: Settings) -> SparkSession:
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    if settings.spark.master.startswith("local"):
        # Python workers (the pseudonym UDF) need this interpreter's pandas and pyarrow:
        # PySpark would otherwise start the first python3 on PATH (make, cron, an IDE).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark.master).appName(settings.spark.app_name)
    for key, value in local_spark_conf(settings).items():
        builder = builder.config(key, value)
    return configure_spark_with_delta_pip(builder).getOrCreate()


def local_spark_conf(settings: Settings) -> dict[str, str]:
    """Settings for an embedded session: small, quiet, UTC, Delta on."""
    conf = {
        **DELTA_SETTINGS,
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        # The log level as a setting: no SparkContext call (there is none over Connect).
        "spark.log.level": "WARN",
        "spark.ui.enabled": "false",
        # Path tables need no metastore; keep Derby files out of the working directory.
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": locations.join(settings.storage.warehouse, "_spark_sql"),
        # Delta's log replay defaults to 50 partitions, far too many on a laptop.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.adaptive.enabled": "true",
        # File listing (VACUUM, partition discovery) defaults to 10,000 parallel tasks.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
        "spark.driver.extraJavaOptions": "-Dderby.system.home=/tmp/userprofile-derby",
    }
    conf.update(settings.spark.conf)
    return conf
