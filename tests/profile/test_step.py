"""The profile step when no model serves the snapshot: a full partition, model columns null."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.helpers import conf_document, write_conf
from userprofile.cli import main
from userprofile.config import Settings, TagRule, load_settings
from userprofile.errors import ConfigError
from userprofile.features.catalog import MODEL_OUTPUTS
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.profile.contract import PROFILE_COLUMNS
from userprofile.profile.step import run_profile

USERS = 200
START = dt.date(2026, 1, 1)
DAYS = 10  # far fewer than the 31 days of history training needs
AS_OF = START + dt.timedelta(days=DAYS)
MODEL_COLUMNS = (*MODEL_OUTPUTS, "segmentation_model_version", "propensity_model_version")
LIKELY_BUYER = TagRule(
    name="likely_buyer", description="top deciles", rule="propensity_decile >= 9"
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Ten days of generated events, ingested, with the snapshot's features; no models."""
    root = tmp_path_factory.mktemp("short_history")
    generator = {"users": USERS, "days": DAYS, "start_date": START.isoformat(), "seed": 3}
    conf = write_conf(root / "short.yaml", conf_document(root, generator=generator))
    for step in ("generate", "ingest"):
        assert main([step, "--conf", str(conf)]) == 0
    assert main(["features", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 0
    return load_settings(conf)


def with_tag(settings: Settings, rule: TagRule) -> Settings:
    return settings.model_copy(update={"tags": [*settings.tags, rule]})


def partition(spark: SparkSession, settings: Settings) -> DataFrame:
    ctx = RunContext(spark, settings)
    profile = tables.read(spark, ctx.table("user_profile"))
    return profile.where(F.col("snapshot_date") == AS_OF)


def non_null(frame: DataFrame, column: str) -> int:
    return frame.where(F.col(column).isNotNull()).count()


def test_without_models_the_partition_is_full_and_model_columns_are_null(
    spark: SparkSession, settings: Settings
) -> None:
    report = run_profile(RunContext(spark, with_tag(settings, LIKELY_BUYER)), AS_OF)

    written = partition(spark, settings).cache()
    assert written.count() == report.rows["user_profile rows"] == USERS
    assert [(f.name, f.dataType) for f in written.schema.fields] == [
        (c.name, c.data_type) for c in PROFILE_COLUMNS
    ]
    assert {c: non_null(written, c) for c in MODEL_COLUMNS} == dict.fromkeys(MODEL_COLUMNS, 0)
    for column in ("lifecycle_stage", "tags", "next_best_categories", "run_id", "tenure_days"):
        assert non_null(written, column) == USERS, column
    buyers = written.where(F.col("orders_total") > 0)
    assert buyers.count() > 0
    for column in ("r_score", "rfm_segment", "predicted_purchases", "expected_spend"):
        assert non_null(buyers, column) == buyers.count(), column
    assert "BG/NBD r, alpha, a, b" in report.rows
    tagged = {t for row in written.select("tags").collect() for t in row.tags}
    assert tagged  # the feature rules match someone; the rule over deciles matches no one
    assert LIKELY_BUYER.name not in tagged
    assert report.rows["models"] == (
        f"none trained on or before {AS_OF}, segment and propensity columns are null: "
        f"training needs 31 days of history, there are {DAYS} (first event {START}), "
        "enough from --as-of 2026-02-01 (train then, profile that date and later)"
    )
    assert not any(key.startswith("segment ") for key in report.rows)
    written.unpersist()


def test_tag_rules_over_model_columns_are_checked_without_models(
    spark: SparkSession, settings: Settings
) -> None:
    # Typed nulls: a segment id compared with an array is still a type error.
    wrong = TagRule(name="wrong_type", description="a bad rule", rule="segment_id = array(1)")
    with pytest.raises(ConfigError, match="tag 'wrong_type'"):
        run_profile(RunContext(spark, with_tag(settings, wrong)), AS_OF)
