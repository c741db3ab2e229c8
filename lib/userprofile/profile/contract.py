"""The ``user_profile`` table's schema: declared once, documented column by column.

Other teams read this table without Spark, so a change here is a deliberate,
versioned act: bump ``PROFILE_CONTRACT_VERSION`` and note it in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userprofile.errors import MissingColumnError

PROFILE_CONTRACT_VERSION = 1


@dataclass(frozen=True)
class ContractColumn:
    name: str
    data_type: T.DataType
    description: str
    nullable: bool = True


PROFILE_COLUMNS: tuple[ContractColumn, ...] = (
    ContractColumn(
        "user_key",
        T.StringType(),
        "Pseudonymous user id: HMAC-SHA256 of the source user id.",
        False,
    ),
    ContractColumn(
        "snapshot_date",
        T.DateType(),
        "Profile as of this date: built from events before 00:00 UTC of it.",
        False,
    ),
    ContractColumn(
        "age_band", T.StringType(), "CRM age band (18-24, 25-34, 35-44, 45-54, 55+, unknown)."
    ),
    ContractColumn("gender", T.StringType(), "CRM gender as given by the user."),
    ContractColumn("region", T.StringType(), "CRM region."),
    ContractColumn(
        "tenure_days", T.IntegerType(), "Days since sign-up or first event, whichever is earlier."
    ),
    ContractColumn(
        "recency_days",
        T.IntegerType(),
        "Days since the last event; null if the user never had one.",
    ),
    ContractColumn(
        "days_since_last_purchase", T.IntegerType(), "Days since the last purchase; null if none."
    ),
    ContractColumn("events_30d", T.LongType(), "Events in the 30 days before the snapshot."),
    ContractColumn(
        "sessions_30d", T.LongType(), "Sessions started in the 30 days before the snapshot."
    ),
    ContractColumn(
        "active_days_30d", T.LongType(), "Days with at least one session in the last 30 days."
    ),
    ContractColumn("orders_30d", T.LongType(), "Purchases in the last 30 days."),
    ContractColumn("orders_90d", T.LongType(), "Purchases in the last 90 days."),
    ContractColumn("orders_total", T.LongType(), "Purchases before the snapshot, all time."),
    ContractColumn(
        "revenue_90d",
        T.DoubleType(),
        "Purchase value (price x quantity) in the last 90 days, net of cancellations.",
    ),
    ContractColumn(
        "revenue_total",
        T.DoubleType(),
        "Purchase value before the snapshot, all time, net of cancellations.",
    ),
    ContractColumn(
        "avg_order_value", T.DoubleType(), "revenue_total / orders_total; null without orders."
    ),
    ContractColumn(
        "favourite_category", T.StringType(), "Category with most events in the last 90 days."
    ),
    ContractColumn(
        "mobile_share",
        T.DoubleType(),
        "Share of sessions on a mobile device; null without sessions.",
    ),
    ContractColumn(
        "night_share",
        T.DoubleType(),
        "Share of sessions started at night (configurable hours, UTC).",
    ),
    ContractColumn(
        "category_affinity",
        T.MapType(T.StringType(), T.DoubleType()),
        "The user's top categories (last 90 days) and their share of categorised events.",
    ),
    ContractColumn(
        "next_best_categories",
        T.ArrayType(T.StringType()),
        "Categories to recommend: the user's affinity blended with the segment's favourites.",
        False,
    ),
    ContractColumn(
        "segment_id",
        T.IntegerType(),
        "Behaviour segment (KMeans); an id keeps its meaning across retrains.",
    ),
    ContractColumn(
        "segment_name",
        T.StringType(),
        "Name of the segment: the features that set its centre apart from the population.",
    ),
    ContractColumn(
        "lifecycle_stage", T.StringType(), "prospect, new, active, at_risk, churned or reactivated."
    ),
    ContractColumn(
        "r_score",
        T.IntegerType(),
        "RFM recency score 1-5 (quintiles of days since the last purchase among purchasers; "
        "5 = most recent); null if never purchased.",
    ),
    ContractColumn(
        "f_score",
        T.IntegerType(),
        "RFM frequency score 1-5 (quintiles of purchases among purchasers); null if none.",
    ),
    ContractColumn(
        "m_score",
        T.IntegerType(),
        "RFM money score 1-5 (quintiles of net revenue among purchasers); null if none.",
    ),
    ContractColumn(
        "predicted_purchases",
        T.DoubleType(),
        "Expected purchase days in the next clv.horizon_days (90) days (BG/NBD); "
        "null if never purchased.",
    ),
    ContractColumn(
        "probability_alive",
        T.DoubleType(),
        "Probability the customer has not silently churned (BG/NBD); null if never purchased.",
    ),
    ContractColumn(
        "expected_spend",
        T.DoubleType(),
        "Expected spend per purchase day (Gamma-Gamma); null if never purchased.",
    ),
    ContractColumn(
        "predicted_value",
        T.DoubleType(),
        "predicted_purchases x expected_spend: expected revenue over the horizon.",
    ),
    ContractColumn(
        "rfm_segment",
        T.StringType(),
        "Named RFM segment (champions, loyal, at risk, hibernating, ...; rules in conf rfm).",
    ),
    ContractColumn(
        "tags",
        T.ArrayType(T.StringType()),
        "Names of the tag rules (conf) this user matches.",
        False,
    ),
    ContractColumn(
        "purchase_propensity_30d",
        T.DoubleType(),
        "Modelled probability of a purchase in the 30 days from the snapshot.",
    ),
    ContractColumn(
        "propensity_decile", T.IntegerType(), "1 (lowest) to 10 (highest) within the snapshot."
    ),
    ContractColumn(
        "segmentation_model_version",
        T.StringType(),
        "Run id of the training that produced the KMeans model; null before any model.",
    ),
    ContractColumn(
        "propensity_model_version",
        T.StringType(),
        "Run id of the training that produced the propensity model; null before any model.",
    ),
    ContractColumn("run_id", T.StringType(), "Id of the profile run that wrote this row.", False),
    ContractColumn(
        "feature_cutoff",
        T.TimestampType(),
        "Features used events strictly before this instant (snapshot_date 00:00 UTC).",
        False,
    ),
    ContractColumn("computed_at", T.TimestampType(), "When this row was computed (UTC).", False),
    ContractColumn("contract_version", T.IntegerType(), "Version of this schema.", False),
)

PROFILE_PARTITION_COLUMN = "snapshot_date"


def conform_to_profile_contract(profile: DataFrame) -> DataFrame:
    """Select and cast the contract's columns in order; fail with the names of any missing."""
    missing = [c.name for c in PROFILE_COLUMNS if c.name not in profile.columns]
    if missing:
        raise MissingColumnError("user_profile contract", missing)
    # The description travels as column metadata: Delta stores it as the column comment.
    return profile.select(
        *[
            F.col(c.name).cast(c.data_type).alias(c.name, metadata={"comment": c.description})
            for c in PROFILE_COLUMNS
        ]
    )


def data_dictionary_markdown() -> str:
    """The contract as a Markdown table (the README's data dictionary is generated from this)."""
    rows = [
        f"| `{c.name}` | {c.data_type.simpleString()} | {'yes' if c.nullable else 'no'} | "
        f"{c.description} |"
        for c in PROFILE_COLUMNS
    ]
    return "\n".join(["| column | type | nullable | meaning |", "|---|---|---|---|", *rows])
