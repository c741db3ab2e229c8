"""Tags: rules from config, the tags column, and what is published beside the profile
(the tag dictionary and tag counts)."""

from __future__ import annotations

import datetime as dt
import hashlib

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import TagRule
from userprofile.config.rules import analysis_error, referenced_columns, rule_column
from userprofile.errors import ConfigError

TAG_DICTIONARY_COLUMNS = (
    "name string, description string, owner string, category string, definition string, "
    "version string, published_at timestamp"
)


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


def tags(rules: list[TagRule]) -> Column:
    """Names of the rules a row satisfies (a null result counts as not satisfied)."""
    if not rules:
        return F.array().cast("array<string>")
    matches = [F.when(F.coalesce(rule_column(r.rule), F.lit(False)), F.lit(r.name)) for r in rules]
    return F.filter(F.array(*matches), lambda name: name.isNotNull())


def check_tag_rules(spark: SparkSession, features: DataFrame, rules: list[TagRule]) -> None:
    """Analyse every rule against the features' schema (no data is read)."""
    for rule in rules:
        error = analysis_error(spark, features.schema, rule.rule)
        if error is not None:
            raise ConfigError(
                f"tags: rule of tag '{rule.name}' is not a valid expression over "
                f"user features: {error}"
            )


def rules_over(rules: list[TagRule], columns: list[str]) -> list[TagRule]:
    """The rules that read only ``columns`` (e.g. not model scores, before scoring)."""
    return [r for r in rules if referenced_columns(r.rule) <= set(columns)]
