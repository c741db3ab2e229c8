"""Tiny inline silver data shared by the feature tests: events and users around AS_OF."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession

AS_OF = dt.date(2026, 3, 1)
EVENT_SCHEMA = (
    "user_key string, session_id string, event_ts timestamp, event_date date, event_type string, "
    "category string, price double, quantity int, device string, channel string"
)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def events(spark: SparkSession) -> DataFrame:
    """Silver events of user A (and one anonymous event) around the snapshot date."""
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


@pytest.fixture(scope="module")
def users(spark: SparkSession) -> DataFrame:
    """Known users: A with events, B without, C signed up after the snapshot."""
    return spark.createDataFrame(
        [
            ("A", 30, "female", "north", dt.date(2025, 12, 1)),
            ("B", 61, "male", "south", dt.date(2026, 1, 1)),
            ("C", 22, "male", "east", dt.date(2026, 3, 5)),  # signs up after the snapshot
        ],
        "user_key string, age int, gender string, region string, signup_date date",
    )
