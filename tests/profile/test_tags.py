"""Tags from rules, their versions, and what is published beside the profile."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from userprofile.config import TagRule
from userprofile.profile.tags import tag_counts, tag_dictionary, tag_version, tags


def test_tags_from_rules(spark: SparkSession) -> None:
    rules = [
        TagRule(name="big", description="d", rule="revenue_90d > 100"),
        TagRule(name="mobile", description="d", rule="mobile_share >= 0.7"),
    ]
    rows = spark.createDataFrame(
        [("a", 150.0, 0.9), ("b", 10.0, None), ("c", 500.0, 0.1)],
        "user_key string, revenue_90d double, mobile_share double",
    )
    expected = spark.createDataFrame(
        [("a", ["big", "mobile"]), ("b", []), ("c", ["big"])], "user_key string, t array<string>"
    )
    assert_df_equality(
        rows.select("user_key", tags(rules).alias("t")),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_tag_counts_and_dictionary(spark: SparkSession) -> None:
    day = dt.date(2026, 5, 1)
    profile = spark.createDataFrame(
        [("a", day, ["x", "y"]), ("b", day, ["x"]), ("c", day, []), ("d", day, [])],
        "user_key string, snapshot_date date, tags array<string>",
    )
    expected_counts = spark.createDataFrame(
        [(day, "x", 2, 0.5), (day, "y", 1, 0.25)],
        "snapshot_date date, tag string, users long, share double",
    )
    assert_df_equality(
        tag_counts(profile), expected_counts, ignore_row_order=True, ignore_nullable=True
    )
    rule = TagRule(name="x", description="d", rule="orders_total > 1")
    changed = rule.model_copy(update={"rule": "orders_total > 2"})
    assert tag_version(rule) != tag_version(changed)
    assert tag_version(rule) == tag_version(rule.model_copy(update={"description": "other"}))
    published = dt.datetime(2026, 5, 1)
    # The version is the rule's own (its properties are checked just above).
    expected_dictionary = spark.createDataFrame(
        [("x", "d", "data-team", "behaviour", "orders_total > 1", tag_version(rule), published)],
        "name string, description string, owner string, category string, definition string, "
        "version string, published_at timestamp",
    )
    assert_df_equality(
        tag_dictionary(spark, [rule], published),
        expected_dictionary,
        ignore_row_order=True,
        ignore_nullable=True,
    )
