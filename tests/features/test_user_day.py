"""The daily roll-up: features read from it equal features of the events it came from, at
the edges a per-day grain could get wrong, and ingest keeps it equal to silver."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.ingest.raw_events import event, write_landing
from userprofile.features.build import features_from_user_days
from userprofile.features.user_day import user_day_rows
from userprofile.ingest.identity import new_identities, stitched
from userprofile.ingest.step import run_ingest
from userprofile.ingest.user_days import refresh_user_days
from userprofile.io import tables
from userprofile.io.context import RunContext, utc_now

SILVER = (
    "user_key string, anonymous_key string, session_id string, event_ts timestamp, "
    "event_date date, event_type string, order_id string, category string, price double, "
    "quantity int, device string, channel string"
)
USERS = "user_key string, age int, gender string, region string, signup_date date"
NIGHT = [22, 23, 0, 1, 2, 3, 4, 5]


def silver(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    """Rows (user, anonymous, session, 'YYYY-MM-DD HH:MM:SS', type, order, category, price,
    channel) as silver events."""
    full = []
    for user, anonymous, session, at, kind, order, category, price, channel in rows:
        ts = dt.datetime.fromisoformat(str(at))
        full.append(
            (
                user,
                anonymous,
                session,
                ts,
                ts.date(),
                kind,
                order,
                category,
                price,
                1,
                "web",
                channel,
            )
        )
    return spark.createDataFrame(full, SILVER)


def features(spark: SparkSession, events: DataFrame, as_of: dt.date, *columns: str) -> DataFrame:
    """Features as the step computes them: roll-up rows, stitched, read as of a date."""
    days = user_day_rows(events).transform(stitched(new_identities(events), as_of))
    build = features_from_user_days(as_of, [7, 30, 90], NIGHT)
    return build(days, spark.createDataFrame([], USERS)).select("user_key", *columns)


def expect(spark: SparkSession, schema: str, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def test_a_session_past_midnight_is_one_session_on_its_start_date(spark: SparkSession) -> None:
    events = silver(
        spark,
        [
            ("A", None, "s1", "2026-02-10 23:50:00", "page_view", None, "books", None, "email"),
            # Exactly midnight belongs to the next day.
            ("A", None, "s1", "2026-02-11 00:00:00", "search", None, "books", None, "email"),
        ],
    )
    columns = ("events_total", "sessions_total", "active_days_total", "night_share")
    schema = "user_key string, events_total long, sessions_total long, "
    schema += "active_days_total long, night_share double"
    after = features(spark, events, dt.date(2026, 2, 12), *columns)
    assert_df_equality(after, expect(spark, schema, [("A", 2, 1, 1, 1.0)]), ignore_nullable=True)
    # A snapshot at midnight sees the session's part before it.
    cut = features(spark, events, dt.date(2026, 2, 11), *columns)
    assert_df_equality(cut, expect(spark, schema, [("A", 1, 1, 1, 1.0)]), ignore_nullable=True)


def test_a_login_mid_session_merges_the_anonymous_part(spark: SparkSession) -> None:
    events = silver(
        spark,
        [
            # Browsing before the login (from social media), then logging in and buying.
            (None, "K", "s1", "2026-02-10 09:00:00", "page_view", None, None, None, "social"),
            ("U", "K", "s1", "2026-02-10 09:05:00", "product_view", None, "toys", 5.0, "email"),
            ("U", None, "s1", "2026-02-10 09:10:00", "purchase", "O1", "toys", 5.0, "email"),
        ],
    )
    got = features(
        spark, events, dt.date(2026, 2, 11), "events_total", "sessions_total", "channel_mix"
    )
    schema = "user_key string, events_total long, sessions_total long, "
    schema += "channel_mix map<string,double>"
    assert_df_equality(
        got, expect(spark, schema, [("U", 3, 1, {"social": 1.0})]), ignore_nullable=True
    )


def test_money_is_summed_exactly_at_every_level(spark: SparkSession) -> None:
    # 2.3 + 1.005 is 3.3049999999999997 in doubles, which rounds to 3.30; exactly, 3.31.
    def bought(user: str, session: str, at: str, price: float) -> tuple[object, ...]:
        return (user, None, session, at, "purchase", None, "books", price, "email")

    events = silver(
        spark,
        [
            # One session on one day: summed in the roll-up row.
            bought("A", "a1", "2026-02-10 10:00:00", 2.3),
            bought("A", "a1", "2026-02-10 10:05:00", 1.005),
            # One session past midnight: summed when its two days merge.
            bought("B", "b1", "2026-02-10 23:50:00", 2.3),
            bought("B", "b1", "2026-02-11 00:10:00", 1.005),
            # Two sessions on one day, and on two days: summed per day and over the window.
            bought("C", "c1", "2026-02-10 10:00:00", 2.3),
            bought("C", "c2", "2026-02-10 18:00:00", 1.005),
            bought("D", "d1", "2026-02-09 10:00:00", 2.3),
            bought("D", "d2", "2026-02-10 10:00:00", 1.005),
        ],
    )
    got = features(spark, events, dt.date(2026, 2, 12), "revenue_total", "revenue_7d")
    schema = "user_key string, revenue_total double, revenue_7d double"
    want = expect(spark, schema, [(u, 3.31, 3.31) for u in "ABCD"])
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)


def test_an_order_over_two_days_of_one_session_counts_once(spark: SparkSession) -> None:
    events = silver(
        spark,
        [
            ("A", None, "s1", "2026-02-10 23:55:00", "purchase", "O1", "home", 10.0, "email"),
            ("A", None, "s1", "2026-02-11 00:05:00", "purchase", "O1", "home", 20.0, "email"),
            # Lines without an order id: one order per session, however many days it spans.
            ("A", None, "s1", "2026-02-10 23:56:00", "purchase", None, "home", 1.0, "email"),
            ("A", None, "s1", "2026-02-11 00:06:00", "purchase", None, "home", 2.0, "email"),
        ],
    )
    got = features(spark, events, dt.date(2026, 2, 12), "orders_total", "revenue_total")
    schema = "user_key string, orders_total long, revenue_total double"
    assert_df_equality(got, expect(spark, schema, [("A", 2, 33.0)]), ignore_nullable=True)


def comparable(days: DataFrame) -> DataFrame:
    """Sets in a fixed order, so two builds of the same rows compare equal."""
    return days.withColumns(
        {c: F.sort_array(c) for c in ("purchase_orders", "cancel_orders", "sources")}
    ).withColumn("categories", F.array_sort(F.map_entries("categories")))


def removed_partitions(table: Path) -> set[str]:
    """The event dates of the files the table's last commit replaced."""
    last = sorted((table / "_delta_log").glob("*.json"))[-1]
    actions = [json.loads(line) for line in last.read_text().splitlines()]
    return {a["remove"]["partitionValues"]["event_date"] for a in actions if "remove" in a}


def new_warehouse(spark: SparkSession, make_settings: SettingsFactory) -> tuple[RunContext, Path]:
    settings = make_settings()
    return RunContext(spark, settings), Path(settings.storage.landing)


def test_ingest_keeps_the_roll_up_equal_to_silver(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    ctx, landing = new_warehouse(spark, make_settings)
    first = [
        event(event_id="a1", event_ts="2026-01-10T23:50:00Z"),
        event(event_id="a2", event_ts="2026-01-11T00:10:00Z"),
        event(event_id="b1", event_ts="2026-01-12T09:00:00Z", user_id="U2", session_id="s9"),
    ]
    write_landing(landing, "first.json", first, day="2026-01-12")
    run_ingest(ctx)
    # Next delivery: a late event of 2026-01-10, a re-sent one and a new day.
    later = [
        event(event_id="a0", event_ts="2026-01-10T23:40:00Z"),
        event(event_id="b1", event_ts="2026-01-12T09:00:00Z", user_id="U2", session_id="s9"),
        event(event_id="c1", event_ts="2026-01-13T10:00:00Z", user_id="U3", session_id="s7"),
    ]
    write_landing(landing, "later.json", later, day="2026-01-13")
    run_ingest(ctx)
    stored = tables.read(spark, ctx.table("silver_user_day"))
    fresh = user_day_rows(tables.read(spark, ctx.table("silver_events")))
    assert_df_equality(
        comparable(stored),
        comparable(fresh.select(*stored.columns)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # Only the dates the delivery touched were rewritten (the re-sent event's date too).
    rewritten = removed_partitions(Path(str(ctx.table("silver_user_day").path)))
    assert rewritten == {"2026-01-10", "2026-01-12"}


def test_an_event_re_sent_across_midnight_is_stored_and_rolled_up_once(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    """A corrected time zone moves e1 into the next day, a date new to silver: e1 stays
    where it was first delivered, and the new day's roll-up does not count it."""
    ctx, landing = new_warehouse(spark, make_settings)
    write_landing(landing, "first.json", [event(event_id="e1", event_ts="2026-01-05T23:50:00Z")])
    run_ingest(ctx)
    corrected = [
        event(event_id="e1", event_ts="2026-01-06T00:10:00Z"),
        event(event_id="e2", event_ts="2026-01-06T09:00:00Z"),
    ]
    write_landing(landing, "corrected.json", corrected, day="2026-01-06")
    run_ingest(ctx)
    events = tables.read(spark, ctx.table("silver_events"))
    stored = sorted((r["event_id"], r["event_date"].isoformat()) for r in events.collect())
    assert stored == [("e1", "2026-01-05"), ("e2", "2026-01-06")]
    days = tables.read(spark, ctx.table("silver_user_day"))
    assert_df_equality(
        comparable(days),
        comparable(user_day_rows(events).select(*days.columns)),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_a_warehouse_without_the_roll_up_gets_it_from_all_of_silver(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    """Silver written before the roll-up existed: the next batch builds it from all days."""
    ctx, landing = new_warehouse(spark, make_settings)
    older = [event(event_id="o1", event_ts="2026-01-05T10:00:00Z")]
    write_landing(landing, "older.json", older, day="2026-01-05")
    run_ingest(ctx)
    shutil.rmtree(str(ctx.table("silver_user_day").path))
    write_landing(landing, "new.json", [event(event_id="n1", event_ts="2026-01-06T10:00:00Z")])
    run_ingest(ctx)
    stored = tables.read(spark, ctx.table("silver_user_day"))
    dates = [r["event_date"].isoformat() for r in stored.select("event_date").collect()]
    assert sorted(dates) == ["2026-01-05", "2026-01-06"]


def test_a_rebuild_leaves_out_users_erased_meanwhile(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    """Silver still held U when the rebuild read it (erase ran between): the rows go."""
    ctx = RunContext(spark, make_settings())
    events = silver(
        spark,
        [
            ("U", None, "s1", "2026-02-10 09:00:00", "page_view", None, None, None, "email"),
            (None, "K", "s2", "2026-02-10 09:30:00", "page_view", None, None, None, "email"),
            ("V", None, "s3", "2026-02-10 10:00:00", "page_view", None, None, None, "email"),
        ],
    )
    tables.append(events, ctx.table("silver_events"), ["event_date"])
    refresh_user_days(ctx, [dt.date(2026, 2, 10)])
    suppression = spark.createDataFrame(
        [("U", "user", "r1", utc_now()), ("K", "anonymous", "r1", utc_now())],
        "key string, kind string, request_id string, erased_at timestamp",
    )
    tables.append(suppression, ctx.table("erasure_suppression"))
    refresh_user_days(ctx, [dt.date(2026, 2, 10)])
    left = tables.read(spark, ctx.table("silver_user_day")).select("user_key", "anonymous_key")
    expected = spark.createDataFrame([("V", None)], "user_key string, anonymous_key string")
    assert_df_equality(left, expected, ignore_nullable=True)
