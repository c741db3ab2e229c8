"""Lifecycle rules, tags, deciles and the profile contract on inline rows."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import REPO
from userprofile.config import LifecycleConfig, RfmConfig, TagRule
from userprofile.contract import (
    PROFILE_COLUMNS,
    conform_to_profile_contract,
    data_dictionary_markdown,
)
from userprofile.errors import MissingColumnError
from userprofile.ingest import REJECT_REASONS
from userprofile.profile import lifecycle_stage, tags, with_deciles
from userprofile.publish import (
    GONE,
    NOT_YET,
    lifecycle_transitions,
    tag_counts,
    tag_dictionary,
    tag_version,
)
from userprofile.recommend import next_best_categories
from userprofile.value import rfm_cuts, with_rfm


@pytest.mark.parametrize(
    ("last", "first", "before_window", "stage"),
    [
        (None, None, None, "prospect"),
        (5, 20, None, "new"),
        (10, 300, 150, "reactivated"),
        (10, 300, 40, "active"),
        (60, 300, 60, "at_risk"),
        (91, 300, 91, "churned"),
        (90, 300, 90, "at_risk"),
    ],
)
def test_lifecycle_stage(
    spark: SparkSession, last: int | None, first: int | None, before_window: int | None, stage: str
) -> None:
    row = spark.createDataFrame(
        [(last, first, before_window)],
        "days_since_last_purchase int, days_since_first_purchase int, "
        "days_since_purchase_before_30d int",
    )
    cfg = LifecycleConfig(new_days=30, active_days=30, churn_days=90)
    assert row.select(lifecycle_stage(cfg).alias("s")).first().s == stage


def test_tags_from_rules(spark: SparkSession) -> None:
    rules = [
        TagRule(name="big", description="d", rule="revenue_90d > 100"),
        TagRule(name="mobile", description="d", rule="mobile_share >= 0.7"),
    ]
    rows = spark.createDataFrame(
        [("a", 150.0, 0.9), ("b", 10.0, None), ("c", 500.0, 0.1)],
        "user_key string, revenue_90d double, mobile_share double",
    )
    got = {r.user_key: r.t for r in rows.select("user_key", tags(rules).alias("t")).collect()}
    assert got == {"a": ["big", "mobile"], "b": [], "c": ["big"]}


def test_deciles_from_cutpoints(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [(0.05,), (0.1,), (0.55,), (0.95,)], "purchase_propensity_30d double"
    )
    cuts = [0.1 * i for i in range(1, 10)]
    got = [
        r.propensity_decile
        for r in with_deciles(cuts)(rows).orderBy("purchase_propensity_30d").collect()
    ]
    assert got == [1, 1, 6, 10]


def test_contract_names_missing_columns(spark: SparkSession) -> None:
    rows = spark.createDataFrame([("k",)], "user_key string")
    with pytest.raises(MissingColumnError, match="user_profile contract: missing column"):
        conform_to_profile_contract(rows)


def test_contract_orders_casts_and_documents(spark: SparkSession) -> None:
    values = {c.name: F.lit(None) for c in PROFILE_COLUMNS}
    conformed = conform_to_profile_contract(
        spark.range(1).select(*[v.alias(k) for k, v in values.items()])
    )
    assert conformed.columns == [c.name for c in PROFILE_COLUMNS]
    fields = {f.name: f for f in conformed.schema.fields}
    assert fields["segment_id"].dataType.simpleString() == "int"
    assert fields["user_key"].metadata["comment"].startswith("Pseudonymous")


def test_readme_data_dictionary_matches_the_contract() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- data-dictionary:start -->") + len("<!-- data-dictionary:start -->")
    end = readme.index("<!-- data-dictionary:end -->")
    assert readme[start:end].strip() == data_dictionary_markdown()


def test_readme_lists_every_quarantine_reason() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- reject-reasons:start -->")
    end = readme.index("<!-- reject-reasons:end -->")
    table = readme[start:end]
    assert all(f"| `{code}` | {reason} |" in table for code, reason in REJECT_REASONS.items())


def test_lifecycle_transitions_between_snapshots(spark: SparkSession) -> None:
    before = spark.createDataFrame(
        [("a", "new"), ("b", "active"), ("c", "active"), ("gone", "churned")],
        "user_key string, lifecycle_stage string",
    )
    now = spark.createDataFrame(
        [("a", "active"), ("b", "active"), ("c", "at_risk"), ("fresh", "prospect")],
        "user_key string, lifecycle_stage string",
    )
    day, previous_day = dt.date(2026, 5, 2), dt.date(2026, 5, 1)
    flows = lifecycle_transitions(now, before, day, previous_day).collect()
    assert {(r.from_stage, r.to_stage): r.users for r in flows} == {
        ("new", "active"): 1,
        ("active", "active"): 1,
        ("active", "at_risk"): 1,
        ("churned", GONE): 1,
        (NOT_YET, "prospect"): 1,
    }
    assert {(r.snapshot_date, r.previous_snapshot_date) for r in flows} == {(day, previous_day)}
    first = lifecycle_transitions(now, None, day, None).collect()
    assert {r.from_stage for r in first} == {NOT_YET}
    assert sum(r.users for r in first) == 4


def test_tag_counts_and_dictionary(spark: SparkSession) -> None:
    day = dt.date(2026, 5, 1)
    profile = spark.createDataFrame(
        [("a", day, ["x", "y"]), ("b", day, ["x"]), ("c", day, []), ("d", day, [])],
        "user_key string, snapshot_date date, tags array<string>",
    )
    counts = {r.tag: (r.users, r.share) for r in tag_counts(profile).collect()}
    assert counts == {"x": (2, 0.5), "y": (1, 0.25)}
    rule = TagRule(name="x", description="d", rule="orders_total > 1")
    changed = rule.model_copy(update={"rule": "orders_total > 2"})
    assert tag_version(rule) != tag_version(changed)
    assert tag_version(rule) == tag_version(rule.model_copy(update={"description": "other"}))
    (row,) = tag_dictionary(spark, [rule], dt.datetime(2026, 5, 1)).collect()
    assert (row.name, row.definition, row.version) == ("x", "orders_total > 1", tag_version(rule))


def test_rfm_scores_by_quintiles_and_segments(spark: SparkSession) -> None:
    # Ten purchasers: i days since the last purchase, 11 - i purchases, 10 x (11 - i) revenue.
    rows = [(f"u{i}", i, 11 - i, 10.0 * (11 - i)) for i in range(1, 11)]
    rows.append(("never", None, 0, 0.0))
    features = spark.createDataFrame(
        rows,
        "user_key string, days_since_last_purchase int, orders_total long, revenue_total double",
    )
    cuts = rfm_cuts(features)
    assert cuts.cuts["orders_total"] == [2, 4, 6, 8]  # from purchasers only
    scored = {
        r.user_key: (r.r_score, r.f_score, r.m_score, r.rfm_segment)
        for r in features.transform(with_rfm(cuts, RfmConfig().segments)).collect()
    }
    assert scored["u1"] == (5, 5, 5, "champions")
    assert scored["u3"] == (4, 4, 4, "champions")
    assert scored["u5"] == (3, 3, 3, "need attention")
    assert scored["u7"] == (2, 2, 2, "hibernating")
    assert scored["u10"] == (1, 1, 1, "hibernating")
    assert scored["never"] == (None, None, None, None)


def test_next_best_categories_blend_user_and_segment(spark: SparkSession) -> None:
    rows = [
        ("a", 0, {"books": 0.9, "toys": 0.1}),
        ("b", 0, {"toys": 1.0}),
        ("c", 0, {"toys": 0.8, "games": 0.2}),
        ("new", 0, None),  # no history: the segment's favourites
        ("d", 1, {"garden": 1.0}),
    ]
    scored = spark.createDataFrame(
        rows, "user_key string, segment_id int, category_affinity map<string, double>"
    )
    picks = {
        r.user_key: r.next_best_categories
        for r in scored.transform(next_best_categories(2, 0.7)).collect()
    }
    # Segment 0 shares (mean over its 4 users): toys 0.475, books 0.225, games 0.05.
    assert picks["a"] == ["books", "toys"]  # 0.7*0.9 + 0.3*0.225 beats toys' 0.07 + 0.1425
    assert picks["b"] == ["toys", "books"]
    assert picks["new"] == ["toys", "books"]
    assert picks["d"] == ["garden"]
