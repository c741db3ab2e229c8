"""Configured Spark SQL conditions (tags, segment names) are checked before data is read."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T


def analysis_error(spark: SparkSession, schema: T.StructType | str, condition: str) -> str | None:
    """The first line of Spark's error if ``condition`` does not parse or resolve as a
    boolean over ``schema``; None if it does. Only the plan is analysed: no data is read.
    """
    empty = spark.createDataFrame([], schema)
    try:
        empty.select(F.expr(condition).cast("boolean")).schema  # noqa: B018 - forces analysis
    except Exception as exc:  # parse and analysis errors both land here
        return str(exc).strip().splitlines()[0]
    return None
