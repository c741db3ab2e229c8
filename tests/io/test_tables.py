"""Table names resolve to the right kind: catalog names, absolute paths, warehouse folders;
insert-only MERGEs read only the dates of their rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from tests.conftest import SettingsFactory
from userprofile.io import tables
from userprofile.io.tables import TableRef, resolve


def test_table_names_resolve(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        tables={
            "user_profile": "main.userprofile.user_profile",
            "silver_events": "s3a://bucket/silver/events",
            "bronze_events": "/abs/bronze",
        }
    )
    assert resolve(settings, "user_profile").name == "main.userprofile.user_profile"
    assert resolve(settings, "silver_events").path == "s3a://bucket/silver/events"
    assert resolve(settings, "bronze_events").path == "/abs/bronze"
    relative = resolve(settings, "user_features")
    assert relative.name is None
    assert relative.path == f"{settings.storage.warehouse}/gold/user_features"


EVENTS = "event_date date, source string, event_id string, price double"
KEY = ["event_date", "source", "event_id"]
OLD, NEW = dt.date(2026, 1, 5), dt.date(2026, 1, 6)


def events(spark: SparkSession, *rows: tuple[dt.date, str]) -> DataFrame:
    return spark.createDataFrame([(day, "events", event_id, 1.0) for day, event_id in rows], EVENTS)


def insert_new(spark: SparkSession, table: TableRef, rows: DataFrame) -> None:
    dates = [r["event_date"] for r in rows.select("event_date").distinct().collect()]
    prune = ("event_date", dates)
    tables.merge_insert_new(spark, rows, table, KEY, ["event_date"], prune_by=prune)


def last_merge(spark: SparkSession, table: TableRef) -> dict[str, str]:
    latest = spark.sql(f"DESCRIBE HISTORY {tables.sql_name(table)} LIMIT 1").first()
    assert latest is not None
    assert latest["operation"] == "MERGE"
    return dict(latest["operationMetrics"])


def test_an_insert_merge_reads_only_the_dates_of_its_rows(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = TableRef(key="silver_events", path=str(tmp_path / "silver"))
    insert_new(spark, table, events(spark, (OLD, "a"), (OLD, "b")))
    # The old date's files are gone from storage (not from the log): a MERGE that read
    # them would fail, so one that succeeds left them alone.
    hidden = tmp_path / "hidden"
    (tmp_path / "silver" / f"event_date={OLD}").rename(hidden)
    with pytest.raises(Exception, match=r"FILE_NOT_EXIST|does not exist"):
        tables.merge_insert_new(spark, events(spark, (NEW, "c")), table, KEY, ["event_date"])
    insert_new(spark, table, events(spark, (NEW, "c")))
    merged = last_merge(spark, table)
    assert (merged["numTargetRowsInserted"], merged["numTargetFilesRemoved"]) == ("1", "0")
    hidden.rename(tmp_path / "silver" / f"event_date={OLD}")
    # A re-sent event of the old date is still found, so not inserted twice.
    insert_new(spark, table, events(spark, (OLD, "a"), (NEW, "c"), (OLD, "d")))
    assert last_merge(spark, table)["numTargetRowsInserted"] == "1"
    stored = tables.read(spark, table).groupBy("event_id").count().collect()
    assert sorted((r["event_id"], r["count"]) for r in stored) == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("d", 1),
    ]


def test_many_dates_are_filtered_by_their_range(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = TableRef(key="silver_events", path=str(tmp_path / "silver"))
    insert_new(spark, table, events(spark, (OLD, "a")))
    later = dt.date(2026, 2, 1)
    resent = events(spark, (OLD, "a"), (NEW, "b"), (later, "c"))
    # Two dates are listed; a third (over the limit) makes it a range.
    monkeypatch.setattr(tables, "MAX_LISTED_DATES", 2)
    assert tables.date_filter("event_date", [NEW, OLD, NEW]) == (
        "t.`event_date` IN (DATE'2026-01-05', DATE'2026-01-06')"
    )
    assert tables.date_filter("event_date", [later, OLD, NEW]) == (
        "t.`event_date` BETWEEN DATE'2026-01-05' AND DATE'2026-02-01'"
    )
    insert_new(spark, table, resent)
    assert tables.read(spark, table).count() == 3
    assert tables.date_filter("event_date", []) == "FALSE"
    with pytest.raises(TypeError, match="date column"):
        tables.date_filter("event_id", ["a"])  # type: ignore[list-item]
