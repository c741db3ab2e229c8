"""The daily roll-up features read instead of events: one row per user, day and session.

``silver/user_day`` holds, per ``event_date``, one row for each session's events on that
day (the key: ``USER_DAY_KEY``), every measure in a mergeable form: counts and sums,
the session's first event time and channel, the sets of order ids and of sources, and
the categories with their counts. Ingest rebuilds it for exactly the dates a batch
touched (``userprofile.ingest.user_days``); features merge a user's rows back into
sessions, which gives the same sessions as the events would:

* a session that runs past midnight is one row per day and merges back into one
  session (counted on its start date), and a snapshot cuts it where it cuts events;
* a session whose first events were anonymous and whose later ones came after a login
  keeps one row per key, and identity stitching (applied when features read the roll-up,
  as it is to events) merges them into one session of the user;
* distinct orders are exact because the order ids themselves are kept, and a session's
  first channel because each row keeps its first event's time.

Configuration is applied when features read it (night hours, date-only sources), so
changing it needs no rebuild. Rows without a user keep the anonymous key (to be
stitched); rows with a user do not, as the user's key is what counts.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

USER_DAY_KEY = ["event_date", "user_key", "anonymous_key", "session_id"]
# Silver columns the roll-up reads; read as null when absent (silver before order ids).
OPTIONAL_COLUMNS = ("order_id", "source", "anonymous_key")
# Counted per event type; summed when rows merge.
TYPE_COUNTS = {"product_views": "product_view", "searches": "search", "carts": "add_to_cart"}
# Money measures, summed exactly: a sum of doubles depends on the order rows arrive in, so
# two partitionings of the same events could round to different cents.
MONEY = ("revenue", "price_sum")
MICROS = 1_000_000


def _micros(value: Column) -> Column:
    """A value in whole millionths: sums of these are exact, in any order."""
    return F.round(value * MICROS).cast("long")


def money_sum(value: Column) -> Column:
    """The exact sum of money values, each to a millionth."""
    return F.sum(_micros(value)) / MICROS


def exact_mean(value: Column) -> Column:
    """The exact mean of values taken to a millionth."""
    return F.sum(_micros(value)) / F.count(value) / MICROS


def measure_sum(value: Column, measure: str) -> Column:
    """Sum of a measure's values: exact for money, plain for counts."""
    return money_sum(value) if measure in MONEY else F.sum(value)


def with_optional_columns(events: DataFrame) -> DataFrame:
    missing = [c for c in OPTIONAL_COLUMNS if c not in events.columns]
    if not missing:  # Spark Connect refuses an empty withColumns
        return events
    return events.withColumns({c: F.lit(None).cast("string") for c in missing})


def user_day_rows(events: DataFrame) -> DataFrame:
    """Silver events (not stitched) -> roll-up rows, one per (date, user or device, session)."""
    quantity = F.coalesce("quantity", F.lit(1))
    line_value = F.col("price") * quantity
    # Revenue is net of cancellations and returns (order exports carry them as `cancel`).
    net_value = F.when(F.col("event_type") == "purchase", line_value).when(
        F.col("event_type") == "cancel", -line_value
    )
    categories = F.collect_list("category")
    rows = with_optional_columns(events)
    return rows.groupBy(
        "event_date",
        "user_key",
        F.when(F.col("user_key").isNull(), F.col("anonymous_key")).alias("anonymous_key"),
        "session_id",
    ).agg(
        F.min("event_ts").alias("first_ts"),
        F.min_by("channel", "event_ts").alias("first_channel"),
        F.count(F.lit(1)).alias("events"),
        *[F.sum(_is_type(t)).alias(name) for name, t in TYPE_COUNTS.items()],
        _order_ids("purchase").alias("purchase_orders"),
        F.sum(F.when(F.col("event_type") == "purchase", quantity)).alias("items"),
        _order_ids("cancel").alias("cancel_orders"),
        money_sum(net_value).alias("revenue"),
        F.count("price").alias("priced_events"),
        money_sum(F.col("price")).alias("price_sum"),
        F.max((F.col("device") == "mobile").cast("int")).alias("mobile"),
        F.collect_set("source").alias("sources"),
        _counts(categories).alias("categories"),
    )


def _is_type(event_type: str) -> Column:
    return (F.col("event_type") == event_type).cast("int")


def _order_ids(event_type: str) -> Column:
    """The session's orders of a type on the day: order ids, "" for lines without one."""
    return F.collect_set(
        F.when(F.col("event_type") == event_type, F.coalesce("order_id", F.lit("")))
    )


def _counts(values: Column) -> Column:
    """An array of names -> a map of each distinct name to how often it occurs."""
    return F.map_from_entries(
        F.transform(
            F.array_distinct(values),
            lambda v: F.struct(v, F.size(F.filter(values, lambda x: x == v)).cast("long")),
        )
    )


def merged_sessions(date_only_sources: tuple[str, ...]) -> Callable[[DataFrame], DataFrame]:
    """Stitched roll-up rows -> one row per (user, session), measured as over its events.

    ``timed`` is 0 when any of the session's events came from a source with
    ``timestamp_precision: date`` (its start has no time of day).
    """
    date_only = F.array(*[F.lit(s) for s in date_only_sources]).cast("array<string>")

    def merge(days: DataFrame) -> DataFrame:
        return days.groupBy("user_key", "session_id").agg(
            F.min("first_ts").alias("session_start"),
            F.min_by("first_channel", "first_ts").alias("channel"),
            F.sum("events").alias("events"),
            *[F.sum(name).alias(name) for name in TYPE_COUNTS],
            _distinct_count("purchase_orders").alias("orders"),
            F.sum("items").alias("items"),
            _distinct_count("cancel_orders").alias("cancels"),
            F.coalesce(money_sum(F.col("revenue")), F.lit(0.0)).alias("revenue"),
            F.sum("priced_events").alias("priced_events"),
            F.coalesce(money_sum(F.col("price_sum")), F.lit(0.0)).alias("price_sum"),
            F.max("mobile").alias("mobile"),
            F.min((~F.arrays_overlap("sources", date_only)).cast("int")).alias("timed"),
        )

    return merge


def _distinct_count(column: str) -> Column:
    return F.size(F.array_distinct(F.flatten(F.collect_list(column))))


def category_counts(days: DataFrame) -> DataFrame:
    """Stitched roll-up rows -> (user_key, category, n): events per category."""
    return (
        days.select("user_key", F.explode("categories").alias("category", "n"))
        .groupBy("user_key", "category")
        .agg(F.sum("n").alias("n"))
    )
