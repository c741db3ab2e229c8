"""Profile assembly: lifecycle stage, tags, propensity deciles and provenance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userprofile.config import LifecycleConfig, TagRule
from userprofile.contract import PROFILE_CONTRACT_VERSION, conform_to_profile_contract

LIFECYCLE_STAGES = ("prospect", "new", "reactivated", "active", "at_risk", "churned")


def lifecycle_stage(cfg: LifecycleConfig) -> Column:
    """The first matching stage, in the order of ``LIFECYCLE_STAGES``.

    reactivated: bought within ``active_days`` after a gap: the purchase before
    that window was more than ``churn_days`` before the snapshot.
    """
    last = F.col("days_since_last_purchase")
    first = F.col("days_since_first_purchase")
    previous = F.col("days_since_purchase_before_30d")
    return (
        F.when(last.isNull(), F.lit("prospect"))
        .when(first <= cfg.new_days, F.lit("new"))
        .when((last <= cfg.active_days) & (previous > cfg.churn_days), F.lit("reactivated"))
        .when(last <= cfg.active_days, F.lit("active"))
        .when(last <= cfg.churn_days, F.lit("at_risk"))
        .otherwise(F.lit("churned"))
    )


def tags(rules: list[TagRule]) -> Column:
    """Names of the rules a row satisfies (a null result counts as not satisfied)."""
    if not rules:
        return F.array().cast("array<string>")
    matches = [F.when(F.coalesce(F.expr(r.rule), F.lit(False)), F.lit(r.name)) for r in rules]
    return F.filter(F.array(*matches), lambda name: name.isNotNull())


def with_deciles(cutpoints: list[float]) -> Callable[[DataFrame], DataFrame]:
    """Add ``propensity_decile`` 1..10 from the 9 quantile cut points of the snapshot."""

    def transform(scored: DataFrame) -> DataFrame:
        score = F.col("purchase_propensity_30d")
        decile = F.lit(1)
        for cut in cutpoints:
            decile = decile + (score > F.lit(cut)).cast("int")
        return scored.withColumn("propensity_decile", decile)

    return transform


def assemble_profile(
    lifecycle: LifecycleConfig,
    tag_rules: list[TagRule],
    *,
    run_id: str,
    segmentation_version: str,
    propensity_version: str,
    computed_at: dt.datetime,
) -> Callable[[DataFrame], DataFrame]:
    """Scored features -> rows of the ``user_profile`` contract."""

    def transform(scored: DataFrame) -> DataFrame:
        profile = scored.select(
            "*",
            lifecycle_stage(lifecycle).alias("lifecycle_stage"),
            tags(tag_rules).alias("tags"),
            F.lit(segmentation_version).alias("segmentation_model_version"),
            F.lit(propensity_version).alias("propensity_model_version"),
            F.lit(run_id).alias("run_id"),
            F.col("snapshot_date").cast("timestamp").alias("feature_cutoff"),
            F.lit(computed_at).alias("computed_at"),
            F.lit(PROFILE_CONTRACT_VERSION).alias("contract_version"),
        )
        return conform_to_profile_contract(profile)

    return transform
