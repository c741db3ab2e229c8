"""Features as of a snapshot date on tiny inline silver data, checked value by value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.features.conftest import AS_OF
from userprofile.errors import MissingColumnError
from userprofile.features.build import purchase_labels, user_features, with_labels

# Absolute, and tighter than pytest.approx's default (1e-6 relative) on every ratio checked
# approximately here (the smallest is 1/8); other values are compared exactly.
PRECISION = 1e-7


@pytest.fixture(scope="module")
def features(events: DataFrame, users: DataFrame) -> Iterator[DataFrame]:
    build = user_features(AS_OF, [7, 30, 90], night_hours=[22, 23, 0, 1, 2, 3, 4, 5])
    built = build(events, users).cache()
    yield built
    built.unpersist()


def of(features: DataFrame, *users: str) -> DataFrame:
    return features.where(F.col("user_key").isin(*users))


def assert_columns(actual: DataFrame, expected: DataFrame, approximate: bool = False) -> None:
    """``actual``'s columns named in ``expected`` equal it row for row (in any row order);
    with ``approximate``, doubles to within PRECISION."""
    chosen = actual.select(*expected.columns)
    if approximate:
        assert_approx_df_equality(
            chosen, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
        )
    else:
        assert_df_equality(chosen, expected, ignore_row_order=True, ignore_nullable=True)


def test_population_is_known_users_before_the_snapshot(
    spark: SparkSession, features: DataFrame
) -> None:
    expected = spark.createDataFrame([("A",), ("B",)], "user_key string")
    assert_df_equality(
        features.select("user_key"), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_windowed_counts_exclude_the_snapshot_day(spark: SparkSession, features: DataFrame) -> None:
    expected = spark.createDataFrame(
        [("A", 5, 5, 8, 8, 2, 3, 1, 2, 1, 2, 2, 20.0, 20.0, 0, 1, 2, 1, 1)],
        "user_key string, events_7d long, events_30d long, events_90d long, events_total long, "
        "sessions_7d long, sessions_90d long, active_days_7d long, active_days_90d long, "
        "orders_30d long, orders_90d long, orders_total long, "
        "revenue_30d double, revenue_total double, cancels_30d long, cancels_90d long, "
        "product_views_90d long, searches_7d long, carts_30d long",
    )
    assert_columns(of(features, "A"), expected)


def test_recency_tenure_and_ratios(spark: SparkSession, features: DataFrame) -> None:
    exact = spark.createDataFrame(
        [("A", AS_OF, 2, 2, 45, 45, 90, 10.0, 1.0, 1.0, "books", "25-34", "north")],
        "user_key string, snapshot_date date, recency_days int, days_since_last_purchase int, "
        "days_since_first_purchase int, days_since_purchase_before_30d int, tenure_days int, "
        "avg_order_value double, view_to_cart_rate_30d double, cart_to_purchase_rate_30d double, "
        "favourite_category string, age_band string, region string",
    )
    assert_columns(of(features, "A"), exact)
    approximate = spark.createDataFrame(
        [("A", 2 / 3, 1 / 3)], "user_key string, mobile_share double, night_share double"
    )
    assert_columns(of(features, "A"), approximate, approximate=True)


def test_basket_price_and_conversion(spark: SparkSession, features: DataFrame) -> None:
    # Six priced events before the snapshot: 10, 10, 10 (books) and 50, 50, 50 (fashion),
    # so the average item price is 30.
    exact = spark.createDataFrame(
        [("A", 2, 3, 30.0, 0.5, 45)],
        "user_key string, items_30d long, items_total long, avg_item_price double, "
        "cancel_share double, days_since_first_event int",
    )
    assert_columns(of(features, "A"), exact)
    approximate = spark.createDataFrame(
        [("A", 1 / 8, 2 / 3, 8 / 3)],
        "user_key string, search_share double, orders_per_session double, "
        "events_per_session double",
    )
    assert_columns(of(features, "A"), approximate, approximate=True)


def test_category_affinity_and_channel_mix(spark: SparkSession, features: DataFrame) -> None:
    # Categorised events: books 4 (view, cart, purchase, search), fashion 3.
    expected = spark.createDataFrame(
        [
            (
                "A",
                {"books": round(4 / 7, 4), "fashion": round(3 / 7, 4)},
                {"email": round(2 / 3, 4), "social": round(1 / 3, 4)},
            ),
            ("B", None, None),
        ],
        "user_key string, category_affinity map<string, double>, channel_mix map<string, double>",
    )
    # chispa's ignore_row_order hashes each row, which Spark refuses for maps: sort instead.
    assert_df_equality(
        of(features, "A", "B").select(*expected.columns).orderBy("user_key"),
        expected,
        ignore_nullable=True,
    )


def test_affinity_keeps_the_top_n(spark: SparkSession, events: DataFrame, users: DataFrame) -> None:
    build = user_features(AS_OF, [7, 30, 90], night_hours=[], affinity_top_n=1)
    expected = spark.createDataFrame(
        [("A", {"books": round(4 / 7, 4)})],
        "user_key string, category_affinity map<string, double>",
    )
    # One row, so no row order to ignore (chispa's ignore_row_order cannot hash maps).
    assert_df_equality(
        of(build(events, users), "A").select(*expected.columns), expected, ignore_nullable=True
    )


def test_time_habits_and_trend(spark: SparkSession, features: DataFrame) -> None:
    expected = spark.createDataFrame(
        [
            # A Friday and a Thursday. One session each in the morning (10:00), afternoon
            # (12:00) and night (23:30). 5 events in the last 30 days against 3 in the 30
            # before: (5 - 3) / (5 + 3). Revenue 20 in the last 30 days, 0 net (bought and
            # returned) before.
            ("A", 0.0, "morning", 0.25, 1.0),
            # No events at all: no habits and no trend.
            ("B", None, None, None, None),
        ],
        "user_key string, weekend_share double, peak_time_of_day string, "
        "activity_trend double, revenue_trend double",
    )
    assert_columns(of(features, "A", "B"), expected)


def test_user_without_events_gets_zeros_and_nulls(spark: SparkSession, features: DataFrame) -> None:
    expected = spark.createDataFrame(
        [("B", 0, 0, 0.0, None, None, None, 59, "55+")],
        "user_key string, events_90d long, orders_total long, revenue_total double, "
        "recency_days int, days_since_last_purchase int, avg_order_value double, "
        "tenure_days int, age_band string",
    )
    assert_columns(of(features, "B"), expected)


def test_labels_look_only_at_the_window_after_the_snapshot(
    spark: SparkSession, events: DataFrame, users: DataFrame
) -> None:
    labels = purchase_labels(AS_OF, 30)(events)
    labelled = with_labels(labels)(users).select("user_key", "purchased")
    expected = spark.createDataFrame(
        [("A", 1.0), ("B", 0.0), ("C", 0.0)], "user_key string, purchased double"
    )
    assert_df_equality(labelled, expected, ignore_row_order=True, ignore_nullable=True)
    # The window is [as_of, as_of + horizon): the 2026-01-15 purchase is day 15 after 01-01.
    earlier = purchase_labels(dt.date(2026, 1, 1), 15)(events)
    assert_df_equality(
        earlier,
        spark.createDataFrame([("A", 1.0)], "user_key string, purchased double"),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert purchase_labels(dt.date(2026, 1, 1), 14)(events).count() == 0


def test_missing_columns_are_named(events: DataFrame, users: DataFrame) -> None:
    build = user_features(AS_OF, [7, 30, 90], night_hours=[])
    with pytest.raises(
        MissingColumnError, match="user_features\\(events\\): missing column\\(s\\) device"
    ):
        build(events.drop("device"), users)
