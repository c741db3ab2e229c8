"""Lifecycle stages from purchase recency, and the flows between two snapshots."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from userprofile.config import LifecycleConfig
from userprofile.profile.lifecycle import GONE, NOT_YET, lifecycle_stage, lifecycle_transitions

TRANSITIONS = (
    "snapshot_date date, previous_snapshot_date date, from_stage string, to_stage string, "
    "users long"
)


@pytest.mark.parametrize(
    ("last", "first", "before_window", "stage"),
    [
        (None, None, None, "prospect"),
        (5, 20, None, "new"),
        (10, 300, 150, "reactivated"),
        (10, 300, 40, "active"),
        (60, 300, 60, "at_risk"),
        (91, 300, 91, "churned"),
        (90, 300, 90, "at_risk"),
    ],
)
def test_lifecycle_stage(
    spark: SparkSession, last: int | None, first: int | None, before_window: int | None, stage: str
) -> None:
    row = spark.createDataFrame(
        [(last, first, before_window)],
        "days_since_last_purchase int, days_since_first_purchase int, "
        "days_since_purchase_before_30d int",
    )
    cfg = LifecycleConfig(new_days=30, active_days=30, churn_days=90)
    assert_df_equality(
        row.select(lifecycle_stage(cfg).alias("s")),
        spark.createDataFrame([(stage,)], "s string"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_lifecycle_transitions_between_snapshots(spark: SparkSession) -> None:
    before = spark.createDataFrame(
        [("a", "new"), ("b", "active"), ("c", "active"), ("gone", "churned")],
        "user_key string, lifecycle_stage string",
    )
    now = spark.createDataFrame(
        [("a", "active"), ("b", "active"), ("c", "at_risk"), ("fresh", "prospect")],
        "user_key string, lifecycle_stage string",
    )
    day, previous_day = dt.date(2026, 5, 2), dt.date(2026, 5, 1)
    expected = spark.createDataFrame(
        [
            (day, previous_day, "new", "active", 1),
            (day, previous_day, "active", "active", 1),
            (day, previous_day, "active", "at_risk", 1),
            (day, previous_day, "churned", GONE, 1),
            (day, previous_day, NOT_YET, "prospect", 1),
        ],
        TRANSITIONS,
    )
    assert_df_equality(
        lifecycle_transitions(now, before, day, previous_day),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # The first snapshot: every one of the 4 users comes from NOT_YET.
    first = spark.createDataFrame(
        [
            (day, None, NOT_YET, "active", 2),
            (day, None, NOT_YET, "at_risk", 1),
            (day, None, NOT_YET, "prospect", 1),
        ],
        TRANSITIONS,
    )
    assert_df_equality(
        lifecycle_transitions(now, None, day, None),
        first,
        ignore_row_order=True,
        ignore_nullable=True,
    )
