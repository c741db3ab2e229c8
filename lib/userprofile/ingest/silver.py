"""Bronze -> silver: pseudonymous ids, no personal data, one row per event, sessions filled in;
CRM exports -> pseudonymous user attributes."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userprofile.ingest.privacy import hmac_sha256_hex

# Distinct ids of a batch joined to its events by broadcast (~100 bytes each); beyond, a
# shuffle join.
BROADCAST_IDS = 100_000


def to_silver_events(key: bytes, session_gap_minutes: int) -> Callable[[DataFrame], DataFrame]:
    """Pseudonymise ids, drop personal data, one row per event_id, sessions where missing."""

    def transform(bronze: DataFrame) -> DataFrame:
        # Sessionise first: its window reads the batch's rows, not a second dedup shuffle.
        sessionised = bronze.transform(with_sessions(session_gap_minutes))
        events = sessionised.dropDuplicates(["source", "event_id"])
        keys, few = id_pseudonyms(key, bronze, ["user_id", "anonymous_id"])
        for column, alias in (("user_id", "user_key"), ("anonymous_id", "anonymous_key")):
            known = keys.select(F.col("_id").alias(column), F.col("_key").alias(alias))
            # A null id stays a null key.
            events = events.join(F.broadcast(known) if few else known, column, "left")
        return events.select(
            "event_id",
            "event_ts",
            "event_date",
            "user_key",
            "anonymous_key",
            "session_id",
            "order_id",
            "event_type",
            "product_id",
            "category",
            "price",
            "quantity",
            "device",
            "channel",
            "source",
        )

    return transform


def id_pseudonyms(key: bytes, rows: DataFrame, columns: list[str]) -> tuple[DataFrame, bool]:
    """(``_id``, ``_key``): each distinct id in ``columns`` of ``rows`` once, with its
    pseudonym; and whether they are few enough (``BROADCAST_IDS``) to broadcast.

    One HMAC per distinct id instead of one per event and id column (a batch has far
    fewer people than events), joined back on the raw id. Counted first (a small
    aggregation, without hashing): a broadcast join spares the events a shuffle, and
    a batch with very many ids gets a shuffle join instead. Measured on 1M events of
    ~4k users (silver cached and read as ingest does): ~25% less CPU than per event.
    """
    ids = [rows.select(F.col(c).alias("_id")) for c in columns]
    distinct = reduce(DataFrame.union, ids).where(F.col("_id").isNotNull()).distinct()
    keys = distinct.select("_id", hmac_sha256_hex(key, F.col("_id")).alias("_key"))
    return keys, distinct.count() <= BROADCAST_IDS


def with_sessions(gap_minutes: int) -> Callable[[DataFrame], DataFrame]:
    """Fill missing session ids: a new session after ``gap_minutes`` without events.

    Sessions are found among the rows at hand (one ingest batch); a session cut
    across two deliveries becomes two sessions.
    """

    def transform(events: DataFrame) -> DataFrame:
        who = F.coalesce("user_id", "anonymous_id")
        missing = events.where(F.col("session_id").isNull())
        order = Window.partitionBy(who).orderBy("event_ts", "event_id")
        previous = F.lag("event_ts").over(order)
        gap = F.make_interval(mins=F.lit(gap_minutes))
        opens_session = previous.isNull() | (F.col("event_ts") > previous + gap)
        first_event = F.last("_opens", ignorenulls=True).over(
            order.rowsBetween(Window.unboundedPreceding, 0)
        )
        # Named after the session's first event id: nothing personal goes into it.
        session = F.concat(F.lit("s-"), F.substring(F.sha2(first_event, 256), 1, 24))
        sessionised = (
            missing.withColumn("_opens", F.when(opens_session, F.col("event_id")))
            .withColumn("session_id", session)
            .drop("_opens")
        )
        return events.where(F.col("session_id").isNotNull()).unionByName(sessionised)

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
