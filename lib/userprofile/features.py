"""Per-user behaviour features as of a snapshot date, and purchase labels after it.

A snapshot dated D sees only events strictly before D 00:00 UTC. Events are
rolled up session -> user-day -> user, so distinct counts (sessions, active
days) become plain counts of already-grouped rows instead of exact
``countDistinct`` over events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userprofile.errors import MissingColumnError

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
)
USER_COLUMNS = ("user_key", "age", "gender", "region", "signup_date")
# Per-window counts; each becomes `<name>_<w>d` and `<name>_total`.
WINDOWED_MEASURES = (
    "events",
    "sessions",
    "active_days",
    "product_views",
    "searches",
    "carts",
    "orders",
    "cancels",
    "revenue",
)


def require_columns(df: DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(where, missing)


def feature_columns(windows_days: list[int]) -> list[str]:
    """Names of the windowed measures, in output order."""
    suffixes = [f"{w}d" for w in windows_days] + ["total"]
    return [f"{m}_{s}" for m in WINDOWED_MEASURES for s in suffixes]


def user_features(
    as_of: dt.date, windows_days: list[int], night_hours: list[int]
) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(events, users) -> one row per known user as of ``as_of`` (see module doc)."""

    def build(events: DataFrame, users: DataFrame) -> DataFrame:
        require_columns(events, EVENT_COLUMNS, "user_features(events)")
        require_columns(users, USER_COLUMNS, "user_features(users)")
        before = events.where((F.col("event_date") < F.lit(as_of)) & F.col("user_key").isNotNull())
        days = _user_days(_sessions(before, night_hours))
        behaviour = _windowed(days, as_of, windows_days).join(
            _favourite_category(before, as_of), "user_key", "left"
        )
        known_users = users.where(F.col("signup_date") < F.lit(as_of)).select(*USER_COLUMNS)
        return _finish(behaviour.join(known_users, "user_key", "full"), as_of, windows_days)

    return build


def _sessions(events: DataFrame, night_hours: list[int]) -> DataFrame:
    is_type: Callable[[str], Column] = lambda t: (F.col("event_type") == t).cast("int")  # noqa: E731
    line_value = F.col("price") * F.coalesce("quantity", F.lit(1))
    # Revenue is net of cancellations and returns (order exports carry them as `cancel`).
    net_value = F.when(F.col("event_type") == "purchase", line_value).when(
        F.col("event_type") == "cancel", -line_value
    )
    return (
        events.groupBy("user_key", "session_id")
        .agg(
            F.min("event_ts").alias("session_start"),
            F.count(F.lit(1)).alias("events"),
            F.sum(is_type("product_view")).alias("product_views"),
            F.sum(is_type("search")).alias("searches"),
            F.sum(is_type("add_to_cart")).alias("carts"),
            F.sum(is_type("purchase")).alias("orders"),
            F.sum(is_type("cancel")).alias("cancels"),
            F.coalesce(F.sum(net_value), F.lit(0.0)).alias("revenue"),
            F.max((F.col("device") == "mobile").cast("int")).alias("mobile"),
        )
        .withColumn("session_date", F.to_date("session_start"))
        .withColumn("night", F.hour("session_start").isin(*night_hours).cast("int"))
    )


def _user_days(sessions: DataFrame) -> DataFrame:
    # Sessions and active days are counted here; the other measures are summed up.
    summed = [m for m in WINDOWED_MEASURES if m not in ("sessions", "active_days")]
    sums = [F.sum(c).alias(c) for c in (*summed, "mobile", "night")]
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
                F.sum(F.when(in_window, F.col(measure)).otherwise(0)).alias(f"{measure}_{w}d")
            )
        aggregations.append(F.sum(measure).alias(f"{measure}_total"))
    bought = F.col("orders") > 0
    recent_start = F.lit(as_of - dt.timedelta(days=30))
    return days.groupBy("user_key").agg(
        *aggregations,
        F.min(date).alias("first_event_date"),
        F.max(date).alias("last_event_date"),
        F.min(F.when(bought, date)).alias("first_purchase_date"),
        F.max(F.when(bought, date)).alias("last_purchase_date"),
        F.max(F.when(bought & (date < recent_start), date)).alias("last_purchase_before_30d"),
        F.sum("mobile").alias("mobile_sessions"),
        F.sum("night").alias("night_sessions"),
    )


def _favourite_category(events: DataFrame, as_of: dt.date) -> DataFrame:
    """The category with most events in the last 90 days (ties broken by name)."""
    recent = events.where(
        F.col("category").isNotNull()
        & (F.col("event_date") >= F.lit(as_of - dt.timedelta(days=90)))
    )
    counts = recent.groupBy("user_key", "category").agg(F.count(F.lit(1)).alias("n"))
    return counts.groupBy("user_key").agg(
        F.max_by("category", F.struct("n", "category")).alias("favourite_category")
    )


def _days_since(column: str, as_of: dt.date) -> Column:
    return F.datediff(F.lit(as_of), F.col(column))


def _ratio(numerator: str, denominator: str) -> Column:
    return F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator))


def _finish(joined: DataFrame, as_of: dt.date, windows_days: list[int]) -> DataFrame:
    counts = {c: F.coalesce(F.col(c), F.lit(0)) for c in feature_columns(windows_days)}
    age = F.col("age")
    age_band = (
        F.when(age.isNull(), F.lit("unknown"))
        .when(age < 25, F.lit("18-24"))
        .when(age < 35, F.lit("25-34"))
        .when(age < 45, F.lit("35-44"))
        .when(age < 55, F.lit("45-54"))
        .otherwise(F.lit("55+"))
    )
    first_seen = F.least("signup_date", "first_event_date")
    return (
        joined.withColumns(counts)
        .withColumn("revenue_total", F.round("revenue_total", 2))
        .select(
            "user_key",
            F.lit(as_of).alias("snapshot_date"),
            *feature_columns(windows_days),
            _days_since("last_event_date", as_of).alias("recency_days"),
            _days_since("last_purchase_date", as_of).alias("days_since_last_purchase"),
            _days_since("first_purchase_date", as_of).alias("days_since_first_purchase"),
            _days_since("last_purchase_before_30d", as_of).alias("days_since_purchase_before_30d"),
            F.datediff(F.lit(as_of), first_seen).alias("tenure_days"),
            F.round(_ratio("revenue_total", "orders_total"), 2).alias("avg_order_value"),
            _ratio("carts_30d", "product_views_30d").alias("view_to_cart_rate_30d"),
            _ratio("orders_30d", "carts_30d").alias("cart_to_purchase_rate_30d"),
            _ratio("mobile_sessions", "sessions_total").alias("mobile_share"),
            _ratio("night_sessions", "sessions_total").alias("night_share"),
            "favourite_category",
            age_band.alias("age_band"),
            "gender",
            "region",
        )
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
