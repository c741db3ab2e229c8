"""The I/O module: table names from config to reads and writes.

A table name is one of: a path relative to the warehouse (``gold/user_profile``),
a catalog name (``main.userprofile.user_profile``: dots, no slash), or an
absolute path / URI (``/data/up``, ``s3://bucket/up``). Nothing else in the
package knows which of these it is dealing with.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.errors import AnalysisException

from userprofile.config import Settings
from userprofile.io import locations
from userprofile.io.pruning import DateWindow

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

_CATALOG_NAME = re.compile(r"^[A-Za-z_][\w`-]*(\.[A-Za-z_][\w`-]*){1,2}$")

# Schema evolution for one MERGE (Delta's setting; the SQL clause is not honoured by Delta 4.0).
_AUTO_MERGE = "spark.databricks.delta.schema.autoMerge.enabled"
_NO_PATH = frozenset({"PATH_NOT_FOUND"})
_NOT_A_TABLE = frozenset(
    {
        "PATH_NOT_FOUND",
        "DELTA_TABLE_NOT_FOUND",
        "DELTA_MISSING_DELTA_TABLE",
        "DELTA_PATH_DOES_NOT_EXIST",
    }
)


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
    return TableRef(key=key, path=locations.join(settings.storage.warehouse, value))


def exists(spark: SparkSession, table: TableRef) -> bool:
    if table.name is not None:
        return bool(spark.catalog.tableExists(table.name))
    assert table.path is not None
    # Asking Spark to resolve the table works the same over Spark Connect and classic
    # sessions (DeltaTable.isDeltaTable needs Delta Connect's server plugin).
    path = table.path
    return _resolves(lambda: spark.read.format("delta").load(path), _NOT_A_TABLE)


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


def replace_dates(df: DataFrame, table: TableRef, column: str, dates: Collection[dt.date]) -> None:
    """Atomically replace the rows whose ``column`` is one of ``dates`` (a partition column);
    rows of other dates stay as they are."""
    listed = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(dates))
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} IN ({listed})")
        .partitionBy(column)
    )
    _save(writer, table)


def overwrite(df: DataFrame, table: TableRef, partition_by: list[str] | None = None) -> None:
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    _save(writer.partitionBy(*partition_by) if partition_by else writer, table)


def merge_insert_new(
    spark: SparkSession,
    source: DataFrame,
    table: TableRef,
    keys: list[str],
    partition_by: list[str] | None = None,
    add_columns: bool = False,
    within: DateWindow | None = None,
) -> int | None:
    """Insert the source rows whose keys are not in the table yet (create it if missing);
    how many were inserted (None when the table was created from all of them).

    ``add_columns``: columns of ``source`` the table lacks are added (schema evolution).
    ``within``: rows match only within a date window, and the MERGE reads only the
    table's files of the window's dates (``userprofile.io.pruning``).
    """
    if not exists(spark, table):
        append(source, table, partition_by)
        return None
    on = within.condition() if within else None
    metrics = _merge(source, table, keys, "WHEN NOT MATCHED THEN INSERT *", add_columns, on)
    return int(metrics["num_inserted_rows"]) if metrics is not None else 0


def merge_upsert(spark: SparkSession, source: DataFrame, table: TableRef, keys: list[str]) -> None:
    """Update matching rows and insert new ones (create the table if missing)."""
    if not exists(spark, table):
        append(source, table)
        return
    _merge(source, table, keys, "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")


def delete_matching(spark: SparkSession, table: TableRef, rows: DataFrame, keys: list[str]) -> int:
    """Delete the table's rows whose ``keys`` equal those of a row of ``rows`` (a MERGE);
    return how many were deleted. ``rows`` may be larger than the driver's memory."""
    result = _merge(rows, table, keys, "WHEN MATCHED THEN DELETE")
    return int(result["num_deleted_rows"] or 0) if result is not None else 0


def delete_where(
    spark: SparkSession, table: TableRef, condition: str, args: Mapping[str, object] | None = None
) -> int:
    """Delete the rows where the SQL ``condition`` holds; return how many were deleted.

    Values go in ``args`` as named parameters (``user_key IN (:keys)`` is written
    ``array_contains(:keys, user_key)``), never into the SQL text.
    """
    statement = f"DELETE FROM {sql_name(table)} WHERE {condition}"
    result = spark.sql(statement, args=dict(args or {})).first()
    return int(result["num_affected_rows"] or 0) if result is not None else 0


# Delta's default retention: a full VACUUM keeps files written in the last week, so
# it never deletes a concurrent writer's uncommitted files.
SAFE_RETENTION_HOURS = 168


def vacuum(spark: SparkSession, table: TableRef, retention_hours: int) -> None:
    """Remove data files no longer referenced and older than the retention."""
    spark.sql(f"VACUUM {sql_name(table)} RETAIN {int(retention_hours)} HOURS").collect()


def _merge(
    source: DataFrame,
    table: TableRef,
    keys: list[str],
    clauses: str,
    add_columns: bool = False,
    target_filter: str | None = None,
) -> Row | None:
    """``MERGE INTO table USING source ON keys [AND target_filter] <clauses>``; its metrics row.

    SQL rather than ``DeltaTable``: the same statement runs over Spark Connect (where
    the Python ``DeltaTable`` needs Delta Connect's server plugin) and classic sessions.
    The view lives in the source's own session (a streaming batch has its own).
    """
    spark = source.sparkSession
    view = f"userprofile_merge_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    condition += f" AND {target_filter}" if target_filter else ""
    statement = f"MERGE INTO {sql_name(table)} t USING {view} s ON {condition} {clauses}"
    try:
        if add_columns:
            with _session_conf(spark, _AUTO_MERGE, "true"):
                return spark.sql(statement).first()
        return spark.sql(statement).first()
    finally:
        spark.catalog.dropTempView(view)


@contextmanager
def _session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a session setting for one statement, then restore what was there."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _resolves(frame: Callable[[], DataFrame], missing: frozenset[str]) -> bool:
    """Whether Spark can resolve ``frame()``; False for the error conditions in ``missing``.

    A classic session resolves a read when it is built, Spark Connect when its schema
    is asked for (an analyse call): both happen inside the ``try``.
    """
    try:
        frame().schema  # noqa: B018
    except AnalysisException as error:
        if error.getCondition() in missing:
            return False
        raise
    return True


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists, on any Hadoop-compatible file system.

    Resolving a file listing works over Spark Connect (no JVM gateway on the client).
    """
    return _resolves(lambda: spark.read.format("binaryFile").load(path), _NO_PATH)


def _save(writer, table: TableRef) -> None:  # type: ignore[no-untyped-def]
    if table.name is not None:
        writer.saveAsTable(table.name)
    else:
        writer.save(table.path)


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


_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


def delete_joined(spark: SparkSession, table: TableRef, rows: DataFrame, on: str) -> int:
    """Delete the table's rows (``t``) that match a row of ``rows`` (``s``) under the SQL
    condition ``on``; return how many were deleted.

    A MERGE rather than ``delete_where``: Delta writes a DELETE's condition into its log
    with the parameter values filled in, a MERGE's only as column references; the values
    stay in ``rows``. Several rows of ``rows`` may match one row of the table.
    """
    view = f"userprofile_delete_{uuid.uuid4().hex}"
    rows.createOrReplaceTempView(view)
    statement = f"MERGE INTO {sql_name(table)} t USING {view} s ON {on} WHEN MATCHED THEN DELETE"
    try:
        result = spark.sql(statement).first()
    finally:
        spark.catalog.dropTempView(view)
    return int(result["num_deleted_rows"] or 0) if result is not None else 0


def delete_by_values(
    spark: SparkSession,
    table: TableRef,
    conditions: Mapping[str, str],
    values: Mapping[str, Collection[str]],
) -> int:
    """Delete the rows that match, for some kind in ``conditions``, one of its ``values``:
    ``conditions`` maps a kind to a condition between the table ``t`` and ``s.value``.

    One ``delete_joined`` over rows (kind, value): only the values the conditions use
    enter the statement, and none enters its text (nor Delta's log). Rows deleted.
    """
    rows = [(kind, v) for kind in conditions for v in sorted(values.get(kind, ()))]
    if not rows:
        return 0
    on = " OR ".join(f"(s.kind = '{kind}' AND {c})" for kind, c in conditions.items())
    source = spark.createDataFrame(rows, "kind string, value string")
    return delete_joined(spark, table, source, on)


def purge_and_vacuum(spark: SparkSession, table: TableRef, retention_hours: int) -> None:
    """Rewrite the files that have deletion vectors, then remove every file no version
    newer than ``retention_hours`` needs: deleted rows are then gone from storage.

    ``VACUUM ... LITE`` deletes only files the log says were removed, never files a
    concurrent writer has written but not yet committed (a full VACUUM with a short
    retention would). When the log no longer reaches back to the last VACUUM, Delta
    refuses LITE: one full VACUUM at Delta's own safe default, then LITE again.
    Delta refuses a retention under its default (7 days) unless its check is off: it is
    off for these statements.
    """
    name = sql_name(table)
    spark.sql(f"REORG TABLE {name} APPLY (PURGE)").collect()
    lite = f"VACUUM {name} LITE RETAIN {int(retention_hours)} HOURS"
    with _session_conf(spark, _RETENTION_CHECK, "false"):
        try:
            spark.sql(lite).collect()
        except Exception as exc:
            if "VACUUM_LITE" not in str(exc):
                raise
            vacuum(spark, table, SAFE_RETENTION_HOURS)
            spark.sql(lite).collect()
