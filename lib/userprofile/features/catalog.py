"""Column names of the feature and model outputs, known without Spark.

Config checks (tag rules, segment-name rules) run before a SparkSession
starts, so they need the names here; a test keeps this list equal to what
``features.user_features`` really produces.
"""

from __future__ import annotations

# Per-window counts; each becomes `<name>_<w>d` and `<name>_total`.
WINDOWED_MEASURES = (
    "events",
    "sessions",
    "active_days",
    "product_views",
    "searches",
    "carts",
    "orders",
    "items",
    "cancels",
    "revenue",
)
# The feature columns after the windowed counts, in output order.
OTHER_FEATURES = (
    "recency_days",
    "days_since_last_purchase",
    "days_since_first_purchase",
    "days_since_purchase_before_30d",
    "tenure_days",
    "days_since_first_event",
    "purchase_days_total",
    # Net revenue of the first purchase day: Gamma-Gamma fits repeat purchases only.
    "revenue_first_purchase_day",
    "avg_order_value",
    "avg_order_value_90d",
    "avg_item_price",
    "view_to_cart_rate_30d",
    "cart_to_purchase_rate_30d",
    "view_to_cart_rate",
    "cart_to_purchase_rate",
    "orders_per_session",
    "events_per_session",
    "search_share",
    "cancel_share",
    "mobile_share",
    "night_share",
    "weekend_share",
    "activity_trend",
    "revenue_trend",
    "peak_time_of_day",
    "favourite_category",
    "category_affinity",
    "channel_mix",
    "age_band",
    "gender",
    "region",
)
# A segment's centre in original units: the median of each of these over its users.
CENTRE_COLUMNS = (
    "orders_90d",
    "revenue_90d",
    "sessions_90d",
    "recency_days",
    "days_since_last_purchase",
    "tenure_days",
    "avg_item_price",
    "avg_order_value",
    "orders_per_session",
    "search_share",
    "mobile_share",
    "night_share",
    "activity_trend",
)
# What scoring adds before tags are assigned: tag rules may use these too.
MODEL_OUTPUTS = ("segment_id", "segment_name", "purchase_propensity_30d", "propensity_decile")


def windowed_columns(windows_days: list[int]) -> list[str]:
    """Names of the windowed measures, in output order."""
    suffixes = [f"{w}d" for w in windows_days] + ["total"]
    return [f"{m}_{s}" for m in WINDOWED_MEASURES for s in suffixes]


def feature_columns(windows_days: list[int]) -> list[str]:
    """Every column of ``user_features``, in order."""
    return ["user_key", "snapshot_date", *windowed_columns(windows_days), *OTHER_FEATURES]


def tag_rule_columns(windows_days: list[int]) -> list[str]:
    """Columns a tag rule may reference."""
    return [*feature_columns(windows_days), *MODEL_OUTPUTS]
