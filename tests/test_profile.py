"""Lifecycle rules, tags, deciles and the profile contract on inline rows."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import REPO
from userprofile.config import LifecycleConfig, TagRule
from userprofile.contract import (
    PROFILE_COLUMNS,
    conform_to_profile_contract,
    data_dictionary_markdown,
)
from userprofile.errors import MissingColumnError
from userprofile.ingest import REJECT_REASONS
from userprofile.profile import lifecycle_stage, tags, with_deciles


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
