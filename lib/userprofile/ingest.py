"""Raw event lines -> typed bronze rows or quarantine rows with a reason; bronze -> silver.

Pure DataFrame functions: the streaming loop, checkpoints and writes live in
``userprofile.steps.ingest``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userprofile.generator import EVENT_TYPES
from userprofile.privacy import hmac_sha256_hex

CORRUPT = "_corrupt_record"

RAW_EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_ts", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("anonymous_id", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("product_id", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("device", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("ip", T.StringType()),
        T.StructField(CORRUPT, T.StringType()),
    ]
)

# (code, human-readable reason) in the order they are checked; the first that applies wins.
REJECT_REASONS: dict[str, str] = {
    "MALFORMED_RECORD": "line is not a JSON object with the expected field types",
    "MISSING_EVENT_ID": "event_id is missing or empty",
    "MISSING_USER": "neither user_id nor anonymous_id is present",
    "BAD_TIMESTAMP": "event_ts is missing or not an ISO-8601 timestamp",
    "FUTURE_TIMESTAMP": "event_ts is later than the ingestion time plus the tolerance",
    "UNKNOWN_EVENT_TYPE": f"event_type is not one of {', '.join(EVENT_TYPES)}",
    "NEGATIVE_PRICE": "price is negative",
    "BAD_QUANTITY": "quantity is not between 1 and 1000",
    "MISSING_PRICE": "add_to_cart or purchase without a price",
}

MAX_QUANTITY = 1000


def parse_event_lines(lines: DataFrame) -> DataFrame:
    """Parse ``value`` (one JSON line) against the explicit raw schema; keep the raw text."""
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    return lines.select(
        F.col("value").alias("raw_record"),
        "_source_file",
        F.from_json("value", RAW_EVENT_SCHEMA, options).alias("r"),
    ).select("raw_record", "_source_file", "r.*")


def with_reject_reason(future_tolerance_hours: int) -> Callable[[DataFrame], DataFrame]:
    """Add ``event_ts_parsed`` and ``reason_code`` (null for a valid event)."""

    def transform(events: DataFrame) -> DataFrame:
        parsed_ts = F.try_to_timestamp(F.col("event_ts"))
        horizon = F.current_timestamp() + F.make_interval(hours=F.lit(future_tolerance_hours))
        checks: list[tuple[str, Column]] = [
            ("MALFORMED_RECORD", F.col(CORRUPT).isNotNull() | F.col("raw_record").isNull()),
            ("MISSING_EVENT_ID", F.coalesce(F.trim("event_id"), F.lit("")) == ""),
            ("MISSING_USER", F.col("user_id").isNull() & F.col("anonymous_id").isNull()),
            ("BAD_TIMESTAMP", F.col("event_ts_parsed").isNull()),
            ("FUTURE_TIMESTAMP", F.col("event_ts_parsed") > horizon),
            (
                "UNKNOWN_EVENT_TYPE",
                ~F.coalesce(F.col("event_type").isin(*EVENT_TYPES), F.lit(False)),
            ),
            ("NEGATIVE_PRICE", F.col("price") < 0),
            ("BAD_QUANTITY", (F.col("quantity") < 1) | (F.col("quantity") > MAX_QUANTITY)),
            (
                "MISSING_PRICE",
                F.col("event_type").isin("add_to_cart", "purchase") & F.col("price").isNull(),
            ),
        ]
        reason: Column = F.lit(None).cast("string")
        for code, failed in reversed(checks):
            reason = F.when(F.coalesce(failed, F.lit(False)), F.lit(code)).otherwise(reason)
        return events.withColumn("event_ts_parsed", parsed_ts).withColumn("reason_code", reason)

    return transform


def to_bronze(classified: DataFrame) -> DataFrame:
    """Valid events, typed, with lineage columns, partitioned by ``event_date``."""
    return classified.where(F.col("reason_code").isNull()).select(
        "event_id",
        F.col("event_ts_parsed").alias("event_ts"),
        F.to_date("event_ts_parsed").alias("event_date"),
        "user_id",
        "anonymous_id",
        "session_id",
        "event_type",
        "product_id",
        "category",
        "price",
        "quantity",
        "device",
        "channel",
        "email",
        "ip",
        "_source_file",
        F.current_timestamp().alias("_ingested_at"),
    )


def to_quarantine(classified: DataFrame, source: str) -> DataFrame:
    """Rejected records: raw text, source file, a code and a reason a person can act on."""
    reasons = F.create_map(*[F.lit(x) for pair in REJECT_REASONS.items() for x in pair])
    return classified.where(F.col("reason_code").isNotNull()).select(
        F.lit(source).alias("source"),
        "raw_record",
        "_source_file",
        "reason_code",
        reasons[F.col("reason_code")].alias("reason"),
        F.current_timestamp().alias("_ingested_at"),
        F.current_date().alias("ingest_date"),
    )


def to_silver_events(key: bytes) -> Callable[[DataFrame], DataFrame]:
    """Pseudonymise ids, drop personal data, keep one row per event_id."""

    def transform(bronze: DataFrame) -> DataFrame:
        return bronze.dropDuplicates(["event_id"]).select(
            "event_id",
            "event_ts",
            "event_date",
            hmac_sha256_hex(key, F.col("user_id")).alias("user_key"),
            hmac_sha256_hex(key, F.col("anonymous_id")).alias("anonymous_key"),
            F.coalesce("session_id", "event_id").alias("session_id"),
            "event_type",
            "product_id",
            "category",
            "price",
            "quantity",
            "device",
            "channel",
        )

    return transform


RAW_USERS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("phone", T.StringType()),
        T.StructField("age", T.IntegerType()),
        T.StructField("gender", T.StringType()),
        T.StructField("region", T.StringType()),
        T.StructField("signup_date", T.DateType()),
    ]
)


def to_silver_users(key: bytes) -> Callable[[DataFrame], DataFrame]:
    """CRM rows -> pseudonymous attributes; the newest source file wins per user."""

    def transform(crm: DataFrame) -> DataFrame:
        latest = (
            crm.where(F.col("user_id").isNotNull())
            .groupBy("user_id")
            .agg(
                F.max_by(
                    F.struct("age", "gender", "region", "signup_date"), F.col("_source_file")
                ).alias("a")
            )
        )
        return latest.select(
            hmac_sha256_hex(key, F.col("user_id")).alias("user_key"),
            "a.age",
            "a.gender",
            "a.region",
            "a.signup_date",
            F.current_timestamp().alias("_updated_at"),
        )

    return transform
