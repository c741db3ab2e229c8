"""Table names resolve to the right kind: catalog names, absolute paths, warehouse folders;
insert-only MERGEs read only the dates of their rows, widened by a re-send window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from tests.conftest import SettingsFactory
from userprofile.io import pruning, tables
from userprofile.io.pruning import DateWindow, date_filter
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
KEY = ["source", "event_id"]
OLD, NEW = dt.date(2026, 1, 5), dt.date(2026, 1, 6)


def events(spark: SparkSession, *rows: tuple[dt.date, str]) -> DataFrame:
    return spark.createDataFrame([(day, "events", event_id, 1.0) for day, event_id in rows], EVENTS)


def insert_new(spark: SparkSession, table: TableRef, rows: DataFrame, days: int = 0) -> int | None:
    dates = [r["event_date"] for r in rows.select("event_date").distinct().collect()]
    window = DateWindow("event_date", dates, days)
    return tables.merge_insert_new(spark, rows, table, KEY, ["event_date"], within=window)


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
    assert insert_new(spark, table, events(spark, (NEW, "c"))) == 1
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
    monkeypatch.setattr(pruning, "MAX_LISTED_DATES", 2)
    assert date_filter("event_date", [NEW, OLD, NEW]) == (
        "t.`event_date` IN (DATE'2026-01-05', DATE'2026-01-06')"
    )
    assert date_filter("event_date", [later, OLD, NEW]) == (
        "t.`event_date` BETWEEN DATE'2026-01-05' AND DATE'2026-02-01'"
    )
    insert_new(spark, table, resent)
    assert tables.read(spark, table).count() == 3
    assert date_filter("event_date", []) == "FALSE"
    with pytest.raises(TypeError, match="date column"):
        date_filter("event_id", ["a"])  # type: ignore[list-item]


def test_a_window_reads_the_neighbouring_dates_and_matches_rows_within_it() -> None:
    assert DateWindow("event_date", [NEW], 1).condition() == (
        "t.`event_date` BETWEEN date_sub(s.`event_date`, 1) AND date_add(s.`event_date`, 1)"
        " AND t.`event_date` IN (DATE'2026-01-05', DATE'2026-01-06', DATE'2026-01-07')"
    )
    assert DateWindow("event_date", [NEW, OLD], 0).condition() == (
        "t.`event_date` = s.`event_date` AND t.`event_date` IN (DATE'2026-01-05', DATE'2026-01-06')"
    )


def test_an_event_re_sent_with_its_date_moved_is_kept_once_within_the_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A corrected time moves "a" one day and "b" two: with a one-day window, "a" is found
    (the first delivery wins) and "b" is a new row, the documented edge."""
    table = TableRef(key="silver_events", path=str(tmp_path / "silver"))
    insert_new(spark, table, events(spark, (OLD, "a"), (OLD, "b")), days=1)
    later, two_later = OLD + dt.timedelta(days=1), OLD + dt.timedelta(days=2)
    assert insert_new(spark, table, events(spark, (later, "a"), (two_later, "b")), days=1) == 1
    stored = tables.read(spark, table).select("event_date", "event_id").collect()
    assert sorted((r["event_date"], r["event_id"]) for r in stored) == [
        (OLD, "a"),
        (OLD, "b"),
        (two_later, "b"),
    ]
