"""Profile assembly: scored features -> rows of the profile contract, and their file layout."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.config import LifecycleConfig, TagRule
from userprofile.features.catalog import MODEL_OUTPUTS
from userprofile.profile.contract import (
    PROFILE_COLUMNS,
    PROFILE_CONTRACT_VERSION,
    conform_to_profile_contract,
)
from userprofile.profile.lifecycle import lifecycle_stage
from userprofile.profile.tags import tags


def with_deciles(cutpoints: list[float]) -> Callable[[DataFrame], DataFrame]:
    """Add ``propensity_decile`` 1..10 from the 9 quantile cut points of the snapshot."""

    def transform(scored: DataFrame) -> DataFrame:
        score = F.col("purchase_propensity_30d")
        decile = F.lit(1)
        for cut in cutpoints:
            decile = decile + (score > F.lit(cut)).cast("int")
        return scored.withColumn("propensity_decile", decile)

    return transform


def without_models() -> Callable[[DataFrame], DataFrame]:
    """Add the model outputs as nulls of the contract's types: no model serves the snapshot.

    Typed, so tag rules over them are still checked against the same schema; they
    evaluate on nulls (no tag).
    """
    types = {c.name: c.data_type for c in PROFILE_COLUMNS if c.name in MODEL_OUTPUTS}

    def transform(features: DataFrame) -> DataFrame:
        return features.withColumns({name: F.lit(None).cast(types[name]) for name in MODEL_OUTPUTS})

    return transform


def assemble_profile(
    lifecycle: LifecycleConfig,
    tag_rules: list[TagRule],
    *,
    run_id: str,
    segmentation_version: str | None,
    propensity_version: str | None,
    computed_at: dt.datetime,
) -> Callable[[DataFrame], DataFrame]:
    """Scored features -> rows of the ``user_profile`` contract (versions None: no models)."""

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


# Files of the profile: about this many rows each (see laid_out).
ROWS_PER_FILE = 1_000_000


def laid_out(profile: DataFrame, rows: int, segmented: bool = True) -> DataFrame:
    """Files of about ROWS_PER_FILE rows, each holding whole segments sorted by user key.

    Partitioning by snapshot_date lets a reader of one snapshot skip the others;
    within it, a file's min/max of segment_id lets a reader of one segment skip
    most files (what Z-ordering by segment would give, without a second commit).
    Without segments (no model yet) users are spread by key, not all into one file.
    """
    files = max(1, math.ceil(rows / ROWS_PER_FILE))
    spread = "segment_id" if segmented else "user_key"
    return profile.repartition(files, spread).sortWithinPartitions("segment_id", "user_key")


def table_properties() -> dict[str, str]:
    return {
        "userprofile.contract_version": str(PROFILE_CONTRACT_VERSION),
        "userprofile.partitioning": "snapshot_date; files clustered by segment_id",
        "userprofile.documentation": "README.md, The profile table (data dictionary)",
    }
