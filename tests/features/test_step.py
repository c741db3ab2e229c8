"""The features step: a snapshot is written once and then read, or built when missing."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.features.conftest import AS_OF
from userprofile.features.step import stored_or_built
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.io.queries import snapshot


@pytest.fixture
def ctx(
    spark: SparkSession, make_settings: SettingsFactory, events: DataFrame, users: DataFrame
) -> RunContext:
    """Silver tables holding the inline events and users of tests/features/conftest.py."""
    context = RunContext(spark, make_settings())
    tables.append(events, context.table("silver_events"), ["event_date"])
    tables.append(users, context.table("silver_users"))
    return context


def stored(ctx: RunContext) -> DataFrame:
    return snapshot(tables.read(ctx.spark, ctx.table("user_features")), AS_OF)


def test_a_missing_snapshot_is_built_and_stored(spark: SparkSession, ctx: RunContext) -> None:
    built = stored_or_built(ctx, AS_OF).select("user_key", "snapshot_date", "orders_total")
    # A has two purchases before the snapshot; B none; C signs up after it.
    expected = spark.createDataFrame(
        [("A", AS_OF, 2), ("B", AS_OF, 0)], "user_key string, snapshot_date date, orders_total long"
    )
    assert_df_equality(built, expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(
        stored(ctx).select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_a_stored_snapshot_is_read_not_recomputed(spark: SparkSession, ctx: RunContext) -> None:
    stored_or_built(ctx, AS_OF)
    # Plant a value no computation gives: reading must return it as stored.
    planted = stored(ctx).withColumn("orders_total", F.lit(99).cast("long"))
    tables.replace_partition(planted, ctx.table("user_features"), "snapshot_date", AS_OF)
    again = stored_or_built(ctx, AS_OF).select("user_key", "orders_total")
    expected = spark.createDataFrame([("A", 99), ("B", 99)], "user_key string, orders_total long")
    assert_df_equality(again, expected, ignore_row_order=True, ignore_nullable=True)


def test_without_a_crm_export_attributes_are_null(
    spark: SparkSession, make_settings: SettingsFactory, events: DataFrame
) -> None:
    """A source with events only (no users file): every user with events gets features."""
    ctx = RunContext(spark, make_settings())
    tables.append(events, ctx.table("silver_events"), ["event_date"])
    built = stored_or_built(ctx, AS_OF).select(
        "user_key", "orders_total", "age_band", "gender", "region"
    )
    expected = spark.createDataFrame(
        [("A", 2, "unknown", None, None)],
        "user_key string, orders_total long, age_band string, gender string, region string",
    )
    assert_df_equality(built, expected, ignore_row_order=True, ignore_nullable=True)
