"""Shared reads: the newest snapshot on, or strictly before, a date; one snapshot's rows."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from tests.conftest import SettingsFactory
from userprofile.errors import MissingInputError
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.io.queries import newest_date, snapshot, snapshot_on_or_before

MARCH_1, MARCH_8 = dt.date(2026, 3, 1), dt.date(2026, 3, 8)


@pytest.fixture(scope="module")
def snapshots(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [("a", MARCH_1), ("b", MARCH_1), ("a", MARCH_8)], "user_key string, snapshot_date date"
    )


@pytest.mark.parametrize(
    ("on_or_before", "expected"),
    [
        (MARCH_8, MARCH_8),  # the day itself counts
        (MARCH_8 - dt.timedelta(days=1), MARCH_1),
        (MARCH_1, MARCH_1),
        (MARCH_1 - dt.timedelta(days=1), None),
    ],
)
def test_newest_on_or_before(
    snapshots: DataFrame, on_or_before: dt.date, expected: dt.date | None
) -> None:
    assert newest_date(snapshots, on_or_before=on_or_before) == expected


@pytest.mark.parametrize(
    ("before", "expected"),
    [(MARCH_8, MARCH_1), (MARCH_8 + dt.timedelta(days=1), MARCH_8), (MARCH_1, None)],
)
def test_newest_strictly_before(
    snapshots: DataFrame, before: dt.date, expected: dt.date | None
) -> None:
    assert newest_date(snapshots, before=before) == expected


def test_newest_overall(snapshots: DataFrame) -> None:
    assert newest_date(snapshots) == MARCH_8


def test_one_snapshot(spark: SparkSession, snapshots: DataFrame) -> None:
    expected = spark.createDataFrame([("a", MARCH_1), ("b", MARCH_1)], snapshots.schema)
    assert_df_equality(snapshot(snapshots, MARCH_1), expected, ignore_row_order=True)


def test_snapshot_of_a_table_on_or_before(
    spark: SparkSession, snapshots: DataFrame, make_settings: SettingsFactory
) -> None:
    ctx = RunContext(spark, make_settings())
    tables.append(snapshots, ctx.table("user_profile"), ["snapshot_date"])
    day, rows = snapshot_on_or_before(ctx, "user_profile", MARCH_8 - dt.timedelta(days=1))
    assert day == MARCH_1
    expected = spark.createDataFrame([("a", MARCH_1), ("b", MARCH_1)], snapshots.schema)
    assert_df_equality(rows, expected, ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(MissingInputError, match="no user_profile snapshot on or before 2026-02-28"):
        snapshot_on_or_before(ctx, "user_profile", MARCH_1 - dt.timedelta(days=1))
