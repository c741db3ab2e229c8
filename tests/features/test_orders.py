"""Orders are orders, not lines; date-only sources have no time of day."""

from __future__ import annotations

import datetime as dt

from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession

from tests.features.conftest import AS_OF
from userprofile.features.build import USER_SCHEMA, user_features

SCHEMA = (
    "user_key string, session_id string, order_id string, event_ts timestamp, event_date date, "
    "event_type string, category string, price double, quantity int, device string, "
    "channel string, source string"
)
Line = tuple[str, str, str | None, str, str, float, int]


def events(spark: SparkSession, lines: list[Line], source: str = "orders") -> DataFrame:
    """(user, session, order, time, event type, price, quantity) lines of one source."""
    rows = []
    for user, session, order, time, event_type, price, quantity in lines:
        ts = dt.datetime.fromisoformat(time)
        rows.append(
            (user, session, order, ts, ts.date(), event_type, "gifts", price, quantity, None,
             None, source)
        )  # fmt: skip
    return spark.createDataFrame(rows, SCHEMA)


def features(frame: DataFrame, date_only: tuple[str, ...] = ()) -> DataFrame:
    build = user_features(AS_OF, [7, 30, 90], [22, 23, 0, 1, 2, 3, 4, 5], 3, date_only)
    return build(frame, frame.sparkSession.createDataFrame([], USER_SCHEMA))


def test_invoice_lines_count_as_one_order(spark: SparkSession) -> None:
    # Invoice 1: three lines; invoice 2: two lines, in the same session; C3 cancels one line.
    lines: list[Line] = [
        ("A", "1", "1", "2026-02-01 10:00:00", "purchase", 2.5, 4),
        ("A", "1", "1", "2026-02-01 10:00:00", "purchase", 2.5, 4),  # an identical line
        ("A", "1", "1", "2026-02-01 10:00:00", "purchase", 10.0, 1),
        ("A", "1", "2", "2026-02-01 10:00:00", "purchase", 5.0, 2),
        ("A", "1", "2", "2026-02-01 10:00:00", "purchase", 1.0, 10),
        ("A", "3", "C3", "2026-02-02 09:00:00", "cancel", 1.0, 10),
        ("A", "3", "C3", "2026-02-02 09:00:00", "cancel", 5.0, 1),
    ]
    actual = features(events(spark, lines)).select(
        "user_key", "orders_total", "items_total", "cancels_total", "revenue_total",
        "avg_order_value", "cancel_share", "revenue_first_purchase_day",
    )  # fmt: skip
    expected = spark.createDataFrame(
        [("A", 2, 21, 1, 35.0, 17.5, 0.5, 50.0)],
        "user_key string, orders_total long, items_total long, cancels_total long, "
        "revenue_total double, avg_order_value double, cancel_share double, "
        "revenue_first_purchase_day double",
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_nullable=True)


def test_without_order_ids_an_order_is_the_purchases_of_one_session(spark: SparkSession) -> None:
    lines: list[Line] = [
        ("A", "s1", None, "2026-02-01 10:00:00", "purchase", 3.0, 1),
        ("A", "s1", None, "2026-02-01 10:02:00", "purchase", 7.0, 1),
        ("A", "s2", None, "2026-02-05 10:00:00", "purchase", 10.0, 1),
        ("B", "s3", None, "2026-02-05 10:00:00", "product_view", 10.0, 1),
    ]
    actual = features(events(spark, lines)).select("user_key", "orders_total", "avg_order_value")
    expected = spark.createDataFrame(
        [("A", 2, 10.0), ("B", 0, None)],
        "user_key string, orders_total long, avg_order_value double",
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_date_only_sources_have_no_time_of_day(spark: SparkSession) -> None:
    # D bought at "midnight" from a date-only source; T at 23:30 from a timed one; M has both.
    dated = events(
        spark,
        [
            ("D", "d1", None, "2026-02-01 00:00:00", "purchase", 3.0, 1),
            ("M", "m1", None, "2026-02-02 00:00:00", "purchase", 3.0, 1),
        ],
        source="purchases",
    )
    timed = events(
        spark,
        [
            ("T", "t1", None, "2026-02-01 23:30:00", "page_view", 1.0, 1),
            ("M", "m2", None, "2026-02-03 10:00:00", "page_view", 1.0, 1),
        ],
        source="web",
    )
    actual = features(dated.unionByName(timed), date_only=("purchases",)).select(
        "user_key", "night_share", "peak_time_of_day", "weekend_share", "sessions_total"
    )
    expected = spark.createDataFrame(
        [
            ("D", None, None, 1.0, 1),  # 2026-02-01 is a Sunday: the date still tells that
            ("T", 1.0, "night", 1.0, 1),
            ("M", 0.0, "morning", 0.0, 2),  # over its one timed session only
        ],
        "user_key string, night_share double, peak_time_of_day string, weekend_share double, "
        "sessions_total long",
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_the_same_source_with_times_is_a_night_owl(spark: SparkSession) -> None:
    dated = events(spark, [("D", "d1", None, "2026-02-01 00:00:00", "purchase", 3.0, 1)])
    row = features(dated).select("night_share", "peak_time_of_day").first()
    assert row is not None
    assert (row.night_share, row.peak_time_of_day) == (1.0, "night")
