"""Per-user behaviour features as of a snapshot date, and purchase labels after it.

A snapshot dated D sees only events strictly before D 00:00 UTC. Events are
rolled up session -> user-day -> user, so distinct counts (sessions, active
days) become plain counts of already-grouped rows instead of exact
``countDistinct`` over events.

An order is one ``order_id`` (an invoice: many lines, one order); purchase lines
without an order id count as one order per session. ``items`` is the quantity
bought. Cancellations are counted the same way (a cancelled invoice is one).
Sessions of sources with ``timestamp_precision: date`` have no time of day: their
time-of-day counts are null and the shares are over sessions with a known time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userprofile.errors import MissingColumnError
from userprofile.features.catalog import WINDOWED_MEASURES, windowed_columns
from userprofile.features.user_day import (
    category_counts,
    measure_sum,
    merged_sessions,
    user_day_rows,
)

EVENT_COLUMNS = (
    "user_key",
    "session_id",
    "event_ts",
    "event_date",
    "event_type",
    "category",
    "price",
    "quantity",
    "device",
    "channel",
)
USER_COLUMNS = ("user_key", "age", "gender", "region", "signup_date")
# The CRM attributes features read, as a schema: an empty frame of it stands for "no CRM export".
USER_SCHEMA = "user_key string, age int, gender string, region string, signup_date date"
# Per-session habits, summed over the user's lifetime (not windowed).
HABIT_COUNTS = (
    "mobile",
    "night",
    "morning",
    "afternoon",
    "evening",
    "weekend",
    "timed",
    "priced_events",
    "price_sum",
)
# Ratio features: name -> (numerator, denominator); null when the denominator is 0.
RATIOS = {
    "view_to_cart_rate_30d": ("carts_30d", "product_views_30d"),
    "cart_to_purchase_rate_30d": ("orders_30d", "carts_30d"),
    "view_to_cart_rate": ("carts_total", "product_views_total"),
    "cart_to_purchase_rate": ("orders_total", "carts_total"),
    "orders_per_session": ("orders_total", "sessions_total"),
    "events_per_session": ("events_total", "sessions_total"),
    "search_share": ("searches_total", "events_total"),
    "cancel_share": ("cancels_total", "orders_total"),
    "mobile_share": ("mobile_total", "sessions_total"),
    "night_share": ("night_total", "timed_total"),
    "weekend_share": ("weekend_total", "sessions_total"),
}
# Trend compares the last 30 days with the 30 before them.
TREND_DAYS = 30


def require_columns(df: DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(where, missing)


def user_features(
    as_of: dt.date,
    windows_days: list[int],
    night_hours: list[int],
    affinity_top_n: int = 3,
    date_only_sources: tuple[str, ...] = (),
) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(events, users) -> one row per known user as of ``as_of`` (see module doc).

    The events are rolled up as ingest stores them (``user_day``), then read as the
    features step reads the stored roll-up: one definition of every feature.
    """
    from_days = features_from_user_days(
        as_of, windows_days, night_hours, affinity_top_n, date_only_sources
    )

    def build(events: DataFrame, users: DataFrame) -> DataFrame:
        require_columns(events, EVENT_COLUMNS, "user_features(events)")
        return from_days(user_day_rows(events), users)

    return build


def features_from_user_days(
    as_of: dt.date,
    windows_days: list[int],
    night_hours: list[int],
    affinity_top_n: int = 3,
    date_only_sources: tuple[str, ...] = (),
) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(stitched user_day rows, users) -> one row per known user as of ``as_of``."""

    def build(days: DataFrame, users: DataFrame) -> DataFrame:
        require_columns(users, USER_COLUMNS, "user_features(users)")
        before = days.where((F.col("event_date") < F.lit(as_of)) & F.col("user_key").isNotNull())
        sessions = before.transform(merged_sessions(date_only_sources)).transform(
            _with_session_habits(night_hours)
        )
        behaviour = (
            _windowed(_user_days(sessions), as_of, windows_days)
            .join(_category_affinity(before, as_of, affinity_top_n), "user_key", "left")
            .join(_channel_mix(sessions), "user_key", "left")
        )
        known_users = users.where(F.col("signup_date") < F.lit(as_of)).select(*USER_COLUMNS)
        return _finish(behaviour.join(known_users, "user_key", "full"), as_of, windows_days)

    return build


def _with_session_habits(night_hours: list[int]) -> Callable[[DataFrame], DataFrame]:
    """The session's date, time-of-day band (null without a time of day) and weekend flag."""

    def transform(sessions: DataFrame) -> DataFrame:
        start = F.col("session_start")
        bands = _time_of_day(F.hour(start), night_hours)
        return (
            sessions.withColumn("session_date", F.to_date(start))
            .withColumns({b: F.when(F.col("timed") == 1, one_hot) for b, one_hot in bands.items()})
            .withColumn("weekend", F.dayofweek(start).isin(1, 7).cast("int"))
        )

    return transform


def _time_of_day(hour: Column, night_hours: list[int]) -> dict[str, Column]:
    """One-hot band of the session's start hour; the configured night hours win."""
    night = hour.isin(*night_hours)
    return {
        "night": night.cast("int"),
        "morning": (~night & (hour >= 6) & (hour < 12)).cast("int"),
        "afternoon": (~night & (hour >= 12) & (hour < 18)).cast("int"),
        "evening": (~night & ((hour >= 18) | (hour < 6))).cast("int"),
    }


def _user_days(sessions: DataFrame) -> DataFrame:
    # Sessions and active days are counted here; the other measures are summed up.
    summed = [m for m in WINDOWED_MEASURES if m not in ("sessions", "active_days")]
    sums = [measure_sum(F.col(c), c).alias(c) for c in (*summed, *HABIT_COUNTS)]
    return (
        sessions.groupBy("user_key", "session_date")
        .agg(F.count(F.lit(1)).alias("sessions"), *sums)
        .withColumn("active_days", F.lit(1))
    )


def _windowed(days: DataFrame, as_of: dt.date, windows_days: list[int]) -> DataFrame:
    date = F.col("session_date")
    aggregations: list[Column] = []
    for measure in WINDOWED_MEASURES:
        for w in windows_days:
            in_window = date >= F.lit(as_of - dt.timedelta(days=w))
            aggregations.append(
                measure_sum(F.when(in_window, F.col(measure)).otherwise(0), measure).alias(
                    f"{measure}_{w}d"
                )
            )
        aggregations.append(measure_sum(F.col(measure), measure).alias(f"{measure}_total"))
    bought = F.col("orders") > 0
    recent_start = F.lit(as_of - dt.timedelta(days=30))
    previous = (date >= F.lit(as_of - dt.timedelta(days=2 * TREND_DAYS))) & (
        date < F.lit(as_of - dt.timedelta(days=TREND_DAYS))
    )
    for measure in ("events", "revenue"):
        aggregations.append(
            measure_sum(F.when(previous, F.col(measure)).otherwise(0), measure).alias(
                f"{measure}_prev_30d"
            )
        )
    return days.groupBy("user_key").agg(
        *aggregations,
        F.min(date).alias("first_event_date"),
        F.max(date).alias("last_event_date"),
        F.min(F.when(bought, date)).alias("first_purchase_date"),
        F.max(F.when(bought, date)).alias("last_purchase_date"),
        F.max(F.when(bought & (date < recent_start), date)).alias("last_purchase_before_30d"),
        F.sum(bought.cast("int")).alias("purchase_days_total"),
        F.min(F.when(bought, F.struct(date, F.col("revenue"))))["revenue"].alias(
            "revenue_first_purchase_day"
        ),
        *[measure_sum(F.col(c), c).alias(f"{c}_total") for c in HABIT_COUNTS],
    )


def _category_affinity(days: DataFrame, as_of: dt.date, top_n: int) -> DataFrame:
    """Favourite category and the shares of the user's top-n categories, last 90 days.

    Shares are of the user's events that carry a category; ties go to the name
    that sorts first.
    """
    recent = days.where(F.col("event_date") >= F.lit(as_of - dt.timedelta(days=90)))
    counts = category_counts(recent)
    ranked = F.sort_array(F.collect_list(F.struct((-F.col("n")).alias("neg_n"), "category")))
    return (
        counts.groupBy("user_key")
        .agg(ranked.alias("ranked"), F.sum("n").alias("categorised"))
        .select(
            "user_key",
            F.col("ranked")[0]["category"].alias("favourite_category"),
            F.map_from_entries(
                F.transform(
                    F.slice("ranked", 1, top_n),
                    lambda r: F.struct(
                        r["category"], F.round(-r["neg_n"] / F.col("categorised"), 4)
                    ),
                )
            ).alias("category_affinity"),
        )
    )


def _channel_mix(sessions: DataFrame) -> DataFrame:
    """Share of the user's sessions per acquisition channel (first event's channel), lifetime."""
    per_channel = (
        sessions.where(F.col("channel").isNotNull())
        .groupBy("user_key", "channel")
        .agg(F.count(F.lit(1)).alias("n"))
    )
    return (
        per_channel.groupBy("user_key")
        .agg(
            F.map_from_entries(F.collect_list(F.struct("channel", "n"))).alias("channel_counts"),
            F.sum("n").alias("channel_sessions"),
        )
        .select(
            "user_key",
            F.transform_values(
                "channel_counts", lambda _, n: F.round(n / F.col("channel_sessions"), 4)
            ).alias("channel_mix"),
        )
    )


def _days_since(column: str, as_of: dt.date) -> Column:
    return F.datediff(F.lit(as_of), F.col(column))


def _ratio(numerator: str, denominator: str) -> Column:
    return F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator))


def _finish(joined: DataFrame, as_of: dt.date, windows_days: list[int]) -> DataFrame:
    habit_totals = [f"{c}_total" for c in HABIT_COUNTS]
    zero_filled = [*windowed_columns(windows_days), "events_prev_30d", "revenue_prev_30d"]
    counts = {c: F.coalesce(F.col(c), F.lit(0)) for c in (*zero_filled, *habit_totals)}
    first_seen = F.least("signup_date", "first_event_date")
    return (
        joined.withColumns(counts)
        .withColumns({c: F.round(c, 2) for c in zero_filled if c.startswith("revenue")})
        .select(
            "user_key",
            F.lit(as_of).alias("snapshot_date"),
            *windowed_columns(windows_days),
            _days_since("last_event_date", as_of).alias("recency_days"),
            _days_since("last_purchase_date", as_of).alias("days_since_last_purchase"),
            _days_since("first_purchase_date", as_of).alias("days_since_first_purchase"),
            _days_since("last_purchase_before_30d", as_of).alias("days_since_purchase_before_30d"),
            F.datediff(F.lit(as_of), first_seen).alias("tenure_days"),
            _days_since("first_event_date", as_of).alias("days_since_first_event"),
            F.coalesce("purchase_days_total", F.lit(0)).alias("purchase_days_total"),
            F.round("revenue_first_purchase_day", 2).alias("revenue_first_purchase_day"),
            F.round(_ratio("revenue_total", "orders_total"), 2).alias("avg_order_value"),
            F.round(_ratio("revenue_90d", "orders_90d"), 2).alias("avg_order_value_90d"),
            F.round(_ratio("price_sum_total", "priced_events_total"), 2).alias("avg_item_price"),
            *[_ratio(num, den).alias(name) for name, (num, den) in RATIOS.items()],
            _trend("events_30d", "events_prev_30d").alias("activity_trend"),
            _trend("revenue_30d", "revenue_prev_30d").alias("revenue_trend"),
            _peak_band().alias("peak_time_of_day"),
            "favourite_category",
            "category_affinity",
            "channel_mix",
            _age_band().alias("age_band"),
            "gender",
            "region",
        )
    )


def _trend(recent: str, previous: str) -> Column:
    """(recent - previous) / (recent + previous): -1 stopped, 0 steady, 1 new; null if idle."""
    total = F.col(recent) + F.col(previous)
    return F.when(total > 0, F.round((F.col(recent) - F.col(previous)) / total, 4))


def _peak_band() -> Column:
    """The time-of-day band with most sessions (ties: morning, afternoon, evening, night)."""
    bands = ("morning", "afternoon", "evening", "night")
    ranked = F.array(
        *[
            F.struct(
                (-F.col(f"{b}_total")).alias("neg_sessions"),
                F.lit(i).alias("order"),
                F.lit(b).alias("band"),
            )
            for i, b in enumerate(bands)
        ]
    )
    return F.when(F.col("timed_total") > 0, F.array_min(ranked)["band"])


def _age_band() -> Column:
    age = F.col("age")
    return (
        F.when(age.isNull(), F.lit("unknown"))
        .when(age < 25, F.lit("18-24"))
        .when(age < 35, F.lit("25-34"))
        .when(age < 45, F.lit("35-44"))
        .when(age < 55, F.lit("45-54"))
        .otherwise(F.lit("55+"))
    )


def purchase_labels(as_of: dt.date, horizon_days: int) -> Callable[[DataFrame], DataFrame]:
    """Users with a purchase in [as_of, as_of + horizon): ``user_key``, ``purchased = 1``."""

    def build(events: DataFrame) -> DataFrame:
        end = as_of + dt.timedelta(days=horizon_days)
        window = (F.col("event_date") >= F.lit(as_of)) & (F.col("event_date") < F.lit(end))
        return (
            events.where(
                window & (F.col("event_type") == "purchase") & F.col("user_key").isNotNull()
            )
            .select("user_key")
            .distinct()
            .withColumn("purchased", F.lit(1.0))
        )

    return build


def with_labels(labels: DataFrame) -> Callable[[DataFrame], DataFrame]:
    def attach(features: DataFrame) -> DataFrame:
        return features.join(labels, "user_key", "left").fillna({"purchased": 0.0})

    return attach
