"""The I/O module: table names from config to reads and writes.

A table name is one of: a path relative to the warehouse (``gold/user_profile``),
a catalog name (``main.userprofile.user_profile``: dots, no slash), or an
absolute path / URI (``/data/up``, ``s3://bucket/up``). Nothing else in the
package knows which of these it is dealing with.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from userprofile.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_CATALOG_NAME = re.compile(r"^[A-Za-z_][\w`-]*(\.[A-Za-z_][\w`-]*){1,2}$")


@dataclass(frozen=True)
class TableRef:
    """Where a Delta table lives: exactly one of ``name`` or ``path`` is set."""

    key: str
    name: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        return self.name or self.path or self.key


def resolve(settings: Settings, key: str) -> TableRef:
    """The TableRef for a key of ``settings.tables`` (e.g. ``"user_profile"``)."""
    value: str = getattr(settings.tables, key)
    if _CATALOG_NAME.match(value) and "/" not in value:
        return TableRef(key=key, name=value)
    if "://" in value or os.path.isabs(value):
        return TableRef(key=key, path=value)
    return TableRef(key=key, path=os.path.abspath(os.path.join(settings.storage.warehouse, value)))


def exists(spark: SparkSession, table: TableRef) -> bool:
    from delta.tables import DeltaTable

    if table.name is not None:
        return bool(spark.catalog.tableExists(table.name))
    assert table.path is not None
    return bool(DeltaTable.isDeltaTable(spark, table.path))


def read(spark: SparkSession, table: TableRef) -> DataFrame:
    if table.name is not None:
        return spark.read.table(table.name)
    return spark.read.format("delta").load(table.path)


def append(
    df: DataFrame,
    table: TableRef,
    partition_by: list[str] | None = None,
    txn: tuple[str, int] | None = None,
    add_columns: bool = False,
) -> None:
    """Append; with ``txn=(app_id, version)`` Delta skips a version it has already seen.

    ``add_columns``: new columns in ``df`` are added to the table (Delta's mergeSchema).
    """
    writer = df.write.format("delta").mode("append").option("mergeSchema", add_columns)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if txn is not None:
        writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
    _save(writer, table)


def replace_partition(
    df: DataFrame,
    table: TableRef,
    column: str,
    value: dt.date,
    partition_by: list[str] | None = None,
    add_columns: bool = False,
) -> None:
    """Atomically replace the rows where ``column = value`` and nothing else.

    ``add_columns``: new columns in ``df`` are added to the table (Delta's mergeSchema);
    older partitions read them as null.
    """
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} = DATE'{value.isoformat()}'")
        .option("mergeSchema", add_columns)
        .partitionBy(*(partition_by or [column]))
    )
    _save(writer, table)


def overwrite(df: DataFrame, table: TableRef) -> None:
    _save(df.write.format("delta").mode("overwrite").option("overwriteSchema", "true"), table)


def merge_insert_new(
    spark: SparkSession,
    source: DataFrame,
    table: TableRef,
    keys: list[str],
    partition_by: list[str] | None = None,
    add_columns: bool = False,
) -> None:
    """Insert the source rows whose keys are not in the table yet (create it if missing).

    ``add_columns``: columns of ``source`` the table lacks are added (schema evolution).
    """
    if not exists(spark, table):
        append(source, table, partition_by)
        return
    target = _delta_table(spark, table)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    merge = target.alias("t").merge(source.alias("s"), condition).whenNotMatchedInsertAll()
    (merge.withSchemaEvolution() if add_columns else merge).execute()


def merge_upsert(spark: SparkSession, source: DataFrame, table: TableRef, keys: list[str]) -> None:
    """Update matching rows and insert new ones (create the table if missing)."""
    if not exists(spark, table):
        append(source, table)
        return
    target = _delta_table(spark, table)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    (
        target.alias("t")
        .merge(source.alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def _delta_table(spark: SparkSession, table: TableRef):  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    if table.name is not None:
        return DeltaTable.forName(spark, table.name)
    assert table.path is not None
    return DeltaTable.forPath(spark, table.path)


def _save(writer, table: TableRef) -> None:  # type: ignore[no-untyped-def]
    if table.name is not None:
        writer.saveAsTable(table.name)
    else:
        writer.save(table.path)


def delete_where(spark: SparkSession, table: TableRef, condition: Column) -> int:
    """Delete the matching rows; return how many were deleted (from this commit's metrics)."""
    target = _delta_table(spark, table)
    before = _version(target)
    target.delete(condition)
    if _version(target) == before:
        return 0  # nothing matched: Delta wrote no commit
    last = target.history(1).select("operationMetrics").first()
    metrics = (last["operationMetrics"] if last is not None else None) or {}
    return int(metrics.get("numDeletedRows", 0))


def delete_matching(spark: SparkSession, table: TableRef, rows: DataFrame, keys: list[str]) -> int:
    """Delete the table's rows whose ``keys`` equal those of a row of ``rows`` (a MERGE);
    return how many were deleted. ``rows`` may be larger than the driver's memory."""
    target = _delta_table(spark, table)
    before = _version(target)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    target.alias("t").merge(rows.alias("s"), condition).whenMatchedDelete().execute()
    if _version(target) == before:
        return 0
    last = target.history(1).select("operationMetrics").first()
    metrics = (last["operationMetrics"] if last is not None else None) or {}
    return int(metrics.get("numTargetRowsDeleted", 0))


def _version(target) -> int:  # type: ignore[no-untyped-def]
    row = target.history(1).select("version").first()
    return int(row["version"]) if row is not None else -1


def vacuum(spark: SparkSession, table: TableRef, retention_hours: int) -> None:
    """Remove data files no longer referenced and older than the retention."""
    _delta_table(spark, table).vacuum(float(retention_hours))


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists, on any Hadoop-compatible file system."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    file_system = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(file_system.exists(hadoop_path))


def remove_path(spark: SparkSession, path: str) -> None:
    """Delete a file or a folder with its contents, if it exists (any Hadoop file system)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    file_system = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    file_system.delete(hadoop_path, True)


def sql_name(table: TableRef) -> str:
    """How Spark SQL names the table: the catalog name or delta.`path`."""
    return table.name if table.name is not None else f"delta.`{table.path}`"


def ensure_properties(spark: SparkSession, table: TableRef, properties: dict[str, str]) -> None:
    """Set table properties that differ (no commit when they are already set)."""
    current = {
        r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {sql_name(table)}").collect()
    }
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if changed:
        pairs = ", ".join(f"'{k}' = '{v.replace(chr(39), '')}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {sql_name(table)} SET TBLPROPERTIES ({pairs})")
