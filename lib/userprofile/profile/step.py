"""`userprofile profile`: score a snapshot's features and write its ``user_profile`` partition."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

from userprofile.errors import MissingInputError
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now
from userprofile.io.queries import newest_date, snapshot
from userprofile.models.propensity import score_propensity
from userprofile.models.registry import latest_model_version, load_model
from userprofile.models.segmentation import score_segments
from userprofile.profile.assemble import assemble_profile, laid_out, table_properties, with_deciles
from userprofile.profile.clv import customer_value
from userprofile.profile.contract import PROFILE_PARTITION_COLUMN
from userprofile.profile.lifecycle import lifecycle_transitions
from userprofile.profile.recommend import next_best_categories
from userprofile.profile.tags import check_tag_rules, tag_counts, tag_dictionary
from userprofile.profile.value import rfm_cuts, with_rfm

DECILE_RELATIVE_ERROR = 0.001


def run_profile(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    settings = ctx.settings
    features = snapshot(ctx.read("user_features"), as_of)
    version = latest_model_version(ctx, as_of)
    segmentation = load_model(ctx, "segmentation", version)
    propensity = load_model(ctx, "propensity", version)
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
                computed_at=utc_now(),
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
    written = snapshot(tables.read(ctx.spark, target), as_of)
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


def _publish_beside(ctx: RunContext, as_of: dt.date, profile: DataFrame) -> None:
    """Tag dictionary (current definitions), tag counts and lifecycle flows of the snapshot."""
    tables.overwrite(
        tag_dictionary(ctx.spark, ctx.settings.tags, utc_now()), ctx.table("tag_dictionary")
    )
    current = snapshot(profile, as_of)
    counts = tag_counts(current)
    tables.replace_partition(counts, ctx.table("tag_counts"), "snapshot_date", as_of)
    previous_date = newest_date(profile, before=as_of)
    previous = snapshot(profile, previous_date) if previous_date is not None else None
    flows = lifecycle_transitions(current, previous, as_of, previous_date)
    tables.replace_partition(flows, ctx.table("lifecycle_transitions"), "snapshot_date", as_of)
