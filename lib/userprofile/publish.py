"""What is published beside the profile: the tag dictionary, tag counts, lifecycle flows."""

from __future__ import annotations

import datetime as dt
import hashlib

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import TagRule

TAG_DICTIONARY_COLUMNS = (
    "name string, description string, owner string, category string, definition string, "
    "version string, published_at timestamp"
)
# Lifecycle stage of a user absent from one of the two snapshots.
NOT_YET = "(not yet a user)"
GONE = "(no longer a user)"


def tag_version(rule: TagRule) -> str:
    """Changes whenever the definition does, so a consumer can tell two meanings apart."""
    return hashlib.sha256(rule.rule.strip().encode()).hexdigest()[:12]


def tag_dictionary(
    spark: SparkSession, rules: list[TagRule], published_at: dt.datetime
) -> DataFrame:
    rows = [
        (r.name, r.description, r.owner, r.category, r.rule, tag_version(r), published_at)
        for r in rules
    ]
    return spark.createDataFrame(rows, TAG_DICTIONARY_COLUMNS)


def tag_counts(profile: DataFrame) -> DataFrame:
    """Per snapshot and tag: users carrying it and their share of the snapshot."""
    totals = profile.groupBy("snapshot_date").agg(F.count(F.lit(1)).alias("snapshot_users"))
    per_tag = (
        profile.select("snapshot_date", F.explode("tags").alias("tag"))
        .groupBy("snapshot_date", "tag")
        .agg(F.count(F.lit(1)).alias("users"))
    )
    return per_tag.join(totals, "snapshot_date").select(
        "snapshot_date",
        "tag",
        "users",
        F.round(F.col("users") / F.col("snapshot_users"), 4).alias("share"),
    )


def lifecycle_transitions(
    current: DataFrame, previous: DataFrame | None, as_of: dt.date, previous_date: dt.date | None
) -> DataFrame:
    """(from stage, to stage, users) between the previous snapshot and this one.

    Users only in one of the two appear as coming from ``NOT_YET`` or going to
    ``GONE``; on the first snapshot every user comes from ``NOT_YET``.
    """
    now = current.select("user_key", F.col("lifecycle_stage").alias("to_stage"))
    if previous is None:
        flows = now.withColumn("from_stage", F.lit(NOT_YET))
    else:
        before = previous.select("user_key", F.col("lifecycle_stage").alias("from_stage"))
        flows = before.join(now, "user_key", "full").select(
            F.coalesce("from_stage", F.lit(NOT_YET)).alias("from_stage"),
            F.coalesce("to_stage", F.lit(GONE)).alias("to_stage"),
        )
    return (
        flows.groupBy("from_stage", "to_stage")
        .agg(F.count(F.lit(1)).alias("users"))
        .select(
            F.lit(as_of).alias("snapshot_date"),
            F.lit(previous_date).cast("date").alias("previous_snapshot_date"),
            "from_stage",
            "to_stage",
            "users",
        )
    )
