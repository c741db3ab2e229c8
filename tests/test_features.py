"""Features as of a snapshot date on tiny inline silver data, checked value by value."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession

from userprofile.catalog import feature_columns
from userprofile.errors import MissingColumnError
from userprofile.features import purchase_labels, user_features, with_labels

AS_OF = dt.date(2026, 3, 1)
EVENT_SCHEMA = (
    "user_key string, session_id string, event_ts timestamp, event_date date, event_type string, "
    "category string, price double, quantity int, device string, channel string"
)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def events(spark: SparkSession) -> DataFrame:
    # Sessions s1 and s3 came from e-mails, s2 from social media.
    rows = [
        ("A", "s1", "2026-02-27 10:00:00", "page_view", None, None, None, "mobile"),
        ("A", "s1", "2026-02-27 10:01:00", "product_view", "books", 10.0, None, "mobile"),
        ("A", "s1", "2026-02-27 10:02:00", "add_to_cart", "books", 10.0, 2, "mobile"),
        ("A", "s1", "2026-02-27 10:03:00", "purchase", "books", 10.0, 2, "mobile"),
        ("A", "s2", "2026-02-27 23:30:00", "search", "books", None, None, "mobile"),
        ("A", "s3", "2026-01-15 12:00:00", "product_view", "fashion", 50.0, None, "desktop"),
        ("A", "s3", "2026-01-15 12:05:00", "purchase", "fashion", 50.0, 1, "desktop"),
        # Returned the same day: revenue is net of it.
        ("A", "s3", "2026-01-15 18:00:00", "cancel", "fashion", 50.0, 1, "desktop"),
        # On the snapshot date itself: after the cutoff, must not count.
        ("A", "s4", "2026-03-01 08:00:00", "purchase", "toys", 99.0, 1, "desktop"),
        # Anonymous (not stitched yet): ignored by per-user features.
        (None, "s5", "2026-02-20 09:00:00", "page_view", None, None, None, "mobile"),
    ]
    channels = {"s2": "social", "s5": "direct"}
    return spark.createDataFrame(
        [
            (u, s, ts(t), ts(t).date(), e, c, p, q, d, channels.get(s, "email"))
            for u, s, t, e, c, p, q, d in rows
        ],
        EVENT_SCHEMA,
    )


def users(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [
            ("A", 30, "female", "north", dt.date(2025, 12, 1)),
            ("B", 61, "male", "south", dt.date(2026, 1, 1)),
            ("C", 22, "male", "east", dt.date(2026, 3, 5)),  # signs up after the snapshot
        ],
        "user_key string, age int, gender string, region string, signup_date date",
    )


@pytest.fixture(scope="module")
def features(spark: SparkSession) -> dict[str, dict[str, object]]:
    build = user_features(AS_OF, [7, 30, 90], night_hours=[22, 23, 0, 1, 2, 3, 4, 5])
    rows = build(events(spark), users(spark)).collect()
    return {r.user_key: r.asDict() for r in rows}


def test_columns_are_the_catalogue(spark: SparkSession) -> None:
    """Config checks rely on the catalogue: it must name exactly what the features produce."""
    build = user_features(AS_OF, [7, 30, 90], night_hours=[22, 23])
    assert build(events(spark), users(spark)).columns == feature_columns([7, 30, 90])


def test_population_is_known_users_before_the_snapshot(
    features: dict[str, dict[str, object]],
) -> None:
    assert set(features) == {"A", "B"}


def test_windowed_counts_exclude_the_snapshot_day(features: dict[str, dict[str, object]]) -> None:
    a = features["A"]
    assert (a["events_7d"], a["events_30d"], a["events_90d"], a["events_total"]) == (5, 5, 8, 8)
    assert (a["sessions_7d"], a["sessions_90d"]) == (2, 3)
    assert (a["active_days_7d"], a["active_days_90d"]) == (1, 2)
    assert (a["orders_30d"], a["orders_90d"], a["orders_total"]) == (1, 2, 2)
    assert (a["revenue_30d"], a["revenue_total"]) == (20.0, 20.0)
    assert (a["cancels_30d"], a["cancels_90d"]) == (0, 1)
    assert (a["product_views_90d"], a["searches_7d"], a["carts_30d"]) == (2, 1, 1)


def test_recency_tenure_and_ratios(features: dict[str, dict[str, object]]) -> None:
    a = features["A"]
    assert a["snapshot_date"] == AS_OF
    assert (a["recency_days"], a["days_since_last_purchase"], a["days_since_first_purchase"]) == (
        2,
        2,
        45,
    )
    assert a["days_since_purchase_before_30d"] == 45
    assert a["tenure_days"] == 90
    assert a["avg_order_value"] == 10.0
    assert a["view_to_cart_rate_30d"] == 1.0
    assert a["cart_to_purchase_rate_30d"] == 1.0
    assert a["mobile_share"] == pytest.approx(2 / 3)
    assert a["night_share"] == pytest.approx(1 / 3)
    assert a["favourite_category"] == "books"
    assert (a["age_band"], a["region"]) == ("25-34", "north")


def test_basket_price_and_conversion(features: dict[str, dict[str, object]]) -> None:
    a = features["A"]
    assert (a["items_30d"], a["items_total"]) == (2, 3)
    # Six priced events before the snapshot: 10, 10, 10 (books) and 50, 50, 50 (fashion).
    assert a["avg_item_price"] == 30.0
    assert a["cancel_share"] == 0.5
    assert a["search_share"] == pytest.approx(1 / 8)
    assert a["orders_per_session"] == pytest.approx(2 / 3)
    assert a["events_per_session"] == pytest.approx(8 / 3)
    assert a["days_since_first_event"] == 45


def test_category_affinity_and_channel_mix(features: dict[str, dict[str, object]]) -> None:
    a = features["A"]
    # Categorised events: books 4 (view, cart, purchase, search), fashion 3.
    assert a["category_affinity"] == {"books": round(4 / 7, 4), "fashion": round(3 / 7, 4)}
    assert a["channel_mix"] == {"email": round(2 / 3, 4), "social": round(1 / 3, 4)}
    assert features["B"]["category_affinity"] is None


def test_affinity_keeps_the_top_n(spark: SparkSession) -> None:
    build = user_features(AS_OF, [7, 30, 90], night_hours=[], affinity_top_n=1)
    (row,) = [r for r in build(events(spark), users(spark)).collect() if r.user_key == "A"]
    assert row.category_affinity == {"books": round(4 / 7, 4)}


def test_time_habits_and_trend(features: dict[str, dict[str, object]]) -> None:
    a = features["A"]
    assert a["weekend_share"] == 0.0  # a Friday and a Thursday
    # One session each in the morning (10:00), afternoon (12:00) and night (23:30).
    assert a["peak_time_of_day"] == "morning"
    # 5 events in the last 30 days against 3 in the 30 before: (5 - 3) / (5 + 3).
    assert a["activity_trend"] == 0.25
    # Revenue 20 in the last 30 days, 0 net (bought and returned) before.
    assert a["revenue_trend"] == 1.0
    b = features["B"]
    assert (b["activity_trend"], b["peak_time_of_day"], b["weekend_share"]) == (None, None, None)


def test_user_without_events_gets_zeros_and_nulls(features: dict[str, dict[str, object]]) -> None:
    b = features["B"]
    assert (b["events_90d"], b["orders_total"], b["revenue_total"]) == (0, 0, 0.0)
    assert b["recency_days"] is None
    assert b["days_since_last_purchase"] is None
    assert b["avg_order_value"] is None
    assert b["tenure_days"] == 59
    assert b["age_band"] == "55+"


def test_labels_look_only_at_the_window_after_the_snapshot(spark: SparkSession) -> None:
    labels = purchase_labels(AS_OF, 30)(events(spark))
    labelled = {r.user_key: r.purchased for r in with_labels(labels)(users(spark)).collect()}
    assert labelled == {"A": 1.0, "B": 0.0, "C": 0.0}
    # The window is [as_of, as_of + horizon): the 2026-01-15 purchase is day 15 after 01-01.
    earlier = purchase_labels(dt.date(2026, 1, 1), 15)(events(spark))
    assert [r.user_key for r in earlier.collect()] == ["A"]
    assert purchase_labels(dt.date(2026, 1, 1), 14)(events(spark)).count() == 0


def test_missing_columns_are_named(spark: SparkSession) -> None:
    build = user_features(AS_OF, [7, 30, 90], night_hours=[])
    with pytest.raises(
        MissingColumnError, match="user_features\\(events\\): missing column\\(s\\) device"
    ):
        build(events(spark).drop("device"), users(spark))
