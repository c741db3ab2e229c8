"""Table properties that keep raw values out of Delta's log: per-file statistics.

Delta copies each file's min/max column values into ``_delta_log``, which no DELETE,
REORG or VACUUM rewrites; tables that hold raw ids are created without statistics
on those columns (``ingest``), and ``erase`` sets the same on older tables.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from userprofile.io.tables import TableRef, ensure_properties, exists, read, sql_name

# Types Delta keeps min/max statistics for (others are refused in dataSkippingStatsColumns).
_STATS_TYPES = frozenset(
    {"string", "byte", "short", "integer", "long", "float", "double", "decimal", "date"}
    | {"timestamp", "timestamp_ntz"}
)


def stats_properties(
    schema: StructType, excluded: Collection[str], partition_by: Collection[str] = ()
) -> dict[str, str]:
    """Table properties under which Delta keeps per-file statistics on every column of
    ``schema`` except ``excluded`` (nor on partition columns, which have none).

    Statistics are min/max values copied into ``_delta_log``, which no DELETE or VACUUM
    rewrites. Columns added to the table later get none until this is set again.
    """
    kept = [
        f.name
        for f in schema.fields
        if f.name not in excluded
        and f.name not in partition_by
        and f.dataType.typeName() in _STATS_TYPES
    ]
    if not kept:
        return {"delta.dataSkippingNumIndexedCols": "0"}
    return {"delta.dataSkippingStatsColumns": ",".join(kept)}


def exclude_from_stats(spark: SparkSession, table: TableRef, excluded: Collection[str]) -> None:
    """Set ``stats_properties`` on an existing table (no commit when already set): files
    written from now on, including rewrites of old files, carry no statistics of ``excluded``."""
    detail = spark.sql(f"DESCRIBE DETAIL {sql_name(table)}").first()
    partition_by = list(detail["partitionColumns"] or []) if detail is not None else []
    schema = read(spark, table).schema
    ensure_properties(spark, table, stats_properties(schema, excluded, partition_by))


def create_if_missing(
    spark: SparkSession,
    table: TableRef,
    schema: StructType,
    partition_by: list[str] | None = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create an empty table with ``properties`` unless it exists, so that even the first
    write follows them (e.g. ``stats_properties``); a later append fills it."""
    if exists(spark, table):
        return
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields)
    parts = f" PARTITIONED BY ({', '.join(f'`{c}`' for c in partition_by)})" if partition_by else ""
    pairs = ", ".join(f"'{k}' = '{v.replace(chr(39), '')}'" for k, v in (properties or {}).items())
    settings = f" TBLPROPERTIES ({pairs})" if pairs else ""
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {sql_name(table)} ({columns}) USING DELTA{parts}{settings}"
    )
