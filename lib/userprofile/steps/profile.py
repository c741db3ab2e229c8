"""`userprofile profile`: score a snapshot's features and write its ``user_profile`` partition."""

from __future__ import annotations

import datetime as dt
import math

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile import tables
from userprofile.clv import customer_value
from userprofile.contract import PROFILE_CONTRACT_VERSION, PROFILE_PARTITION_COLUMN
from userprofile.errors import MissingInputError
from userprofile.profile import assemble_profile, with_deciles
from userprofile.propensity import score_propensity
from userprofile.publish import lifecycle_transitions, tag_counts, tag_dictionary
from userprofile.recommend import next_best_categories
from userprofile.segmentation import score_segments
from userprofile.steps.common import RunContext, StepReport, Stopwatch
from userprofile.steps.tag_rules import check_tag_rules
from userprofile.steps.train import latest_model_version, model_path
from userprofile.value import rfm_cuts, with_rfm

DECILE_RELATIVE_ERROR = 0.001
ROWS_PER_FILE = 1_000_000


def run_profile(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    settings = ctx.settings
    features = ctx.read("user_features").where(F.col("snapshot_date") == F.lit(as_of))
    version = latest_model_version(ctx, as_of)
    segmentation = PipelineModel.load(model_path(ctx, "segmentation", version))
    propensity = PipelineModel.load(model_path(ctx, "propensity", version))
    # Propensity first: a hybrid propensity model adds its own segment columns internally.
    scored = score_segments(segmentation, score_propensity(propensity, features))
    # Rules may read scores too: check them against the scored schema (no data is read).
    check_tag_rules(ctx.spark, scored.transform(with_deciles([])), settings.tags)
    cached = scored.cache()
    cutpoints = cached.approxQuantile(
        "purchase_propensity_30d", [i / 10 for i in range(1, 10)], DECILE_RELATIVE_ERROR
    )
    if not cutpoints:
        raise MissingInputError(
            f"user_features has no rows for snapshot {as_of}: run `userprofile features` first"
        )
    rfm = rfm_cuts(cached)
    value = customer_value(cached, settings.clv.horizon_days)
    profile = (
        cached.join(value.predictions, "user_key", "left")
        .transform(with_deciles(cutpoints))
        .transform(with_rfm(rfm, settings.rfm.segments))
        .transform(
            next_best_categories(
                settings.recommendations.top_n, settings.recommendations.user_weight
            )
        )
        .transform(
            assemble_profile(
                settings.lifecycle,
                settings.tags,
                run_id=ctx.run_id,
                segmentation_version=version,
                propensity_version=version,
                computed_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            )
        )
    )
    target = ctx.table("user_profile")
    # Contract changes within a version are additive: new columns are added to the table.
    tables.replace_partition(
        laid_out(profile, cached.count()), target, PROFILE_PARTITION_COLUMN, as_of, add_columns=True
    )
    tables.ensure_properties(ctx.spark, target, table_properties())
    cached.unpersist()
    written = tables.read(ctx.spark, target).where(F.col(PROFILE_PARTITION_COLUMN) == F.lit(as_of))
    _publish_beside(ctx, as_of, tables.read(ctx.spark, target))
    rows = written.count()
    report = StepReport(
        "profile", {"user_profile rows": rows}, clock.seconds(), rows_in=rows, rows_out=rows
    )
    if value.bgnbd is not None and value.gamma_gamma is not None:
        bg, gg = value.bgnbd, value.gamma_gamma
        report.rows["BG/NBD r, alpha, a, b"] = f"{bg.r:.3g}, {bg.alpha:.3g}, {bg.a:.3g}, {bg.b:.3g}"
        report.rows["Gamma-Gamma p, q, gamma"] = f"{gg.p:.3g}, {gg.q:.3g}, {gg.gamma:.3g}"
    segments = written.groupBy("segment_id", "segment_name").count().orderBy("segment_id")
    for row in segments.collect():  # k rows
        report.rows[f"segment {row['segment_id']} {row['segment_name']}"] = row["count"]
    for row in written.groupBy("lifecycle_stage").count().orderBy("lifecycle_stage").collect():
        report.rows[f"lifecycle {row['lifecycle_stage']}"] = row["count"]
    return report


def laid_out(profile: DataFrame, rows: int) -> DataFrame:
    """Files of about ROWS_PER_FILE rows, each holding whole segments sorted by user key.

    Partitioning by snapshot_date lets a reader of one snapshot skip the others;
    within it, a file's min/max of segment_id lets a reader of one segment skip
    most files (what Z-ordering by segment would give, without a second commit).
    """
    files = max(1, math.ceil(rows / ROWS_PER_FILE))
    return profile.repartition(files, "segment_id").sortWithinPartitions("segment_id", "user_key")


def table_properties() -> dict[str, str]:
    return {
        "userprofile.contract_version": str(PROFILE_CONTRACT_VERSION),
        "userprofile.partitioning": "snapshot_date; files clustered by segment_id",
        "userprofile.documentation": "README.md, The profile table (data dictionary)",
    }


def _publish_beside(ctx: RunContext, as_of: dt.date, profile: DataFrame) -> None:
    """Tag dictionary (current definitions), tag counts and lifecycle flows of the snapshot."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    tables.overwrite(tag_dictionary(ctx.spark, ctx.settings.tags, now), ctx.table("tag_dictionary"))
    snapshot = profile.where(F.col(PROFILE_PARTITION_COLUMN) == F.lit(as_of))
    counts = tag_counts(snapshot)
    tables.replace_partition(counts, ctx.table("tag_counts"), "snapshot_date", as_of)
    earlier = profile.where(F.col(PROFILE_PARTITION_COLUMN) < F.lit(as_of))
    newest = earlier.agg(F.max(PROFILE_PARTITION_COLUMN)).first()
    previous_date = newest[0] if newest is not None else None
    previous = (
        earlier.where(F.col(PROFILE_PARTITION_COLUMN) == F.lit(previous_date))
        if previous_date is not None
        else None
    )
    flows = lifecycle_transitions(snapshot, previous, as_of, previous_date)
    tables.replace_partition(flows, ctx.table("lifecycle_transitions"), "snapshot_date", as_of)
