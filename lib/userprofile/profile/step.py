"""`userprofile profile`: score a snapshot's features and write its ``user_profile`` partition.

A snapshot no model serves while the history is too short to train still gets
its partition, with the same schema: features, tags, lifecycle, RFM and customer
value filled; segment, propensity, decile and the model versions null; and a
``models`` row in the report saying why and when models come. With history
enough to train and no model (train not run), profile stops and says to train.
A model serves the snapshots from its training date on; earlier snapshots stay
without models.

No ``--require-models`` flag: ``userprofile train`` still fails when it cannot
train (a job that must have models stops there), a pipeline run records train as
skipped in ``pipeline_runs``, and a consumer tells rows without models by a null
``segmentation_model_version``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import DataFrame

from userprofile.errors import MissingInputError
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now
from userprofile.io.faults import kill_point
from userprofile.io.queries import newest_date, snapshot
from userprofile.models.propensity import score_propensity
from userprofile.models.registry import history, load_model, newest_model
from userprofile.models.segmentation import score_segments
from userprofile.profile.assemble import (
    assemble_profile,
    laid_out,
    table_properties,
    with_deciles,
    without_models,
)
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
    served = newest_model(ctx, as_of)
    version = served[0] if served is not None else None
    scored = _scored(ctx, features, version)
    # Rules may read scores too: check them against the scored schema (no data is read).
    check_tag_rules(ctx.spark, scored.transform(with_deciles([])), settings.tags)
    cached = scored.cache()
    users = cached.count()
    if users == 0:
        raise MissingInputError(
            f"user_features has no rows for snapshot {as_of}: run `userprofile features` first"
        )
    no_models = None if version is not None else _why_no_models(ctx, as_of, cached)
    rfm = rfm_cuts(cached)
    value = customer_value(cached, settings.clv.horizon_days)
    profile = (
        cached.join(value.predictions, "user_key", "left")
        .transform(_deciles(cached, version))
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
        laid_out(profile, users, segmented=version is not None),
        target,
        PROFILE_PARTITION_COLUMN,
        as_of,
        add_columns=True,
    )
    tables.ensure_properties(ctx.spark, target, table_properties())
    kill_point("profile.after_partition")
    cached.unpersist()
    written = snapshot(tables.read(ctx.spark, target), as_of)
    _publish_beside(ctx, as_of, tables.read(ctx.spark, target))
    rows = written.count()
    report = StepReport(
        "profile", {"user_profile rows": rows}, clock.seconds(), rows_in=rows, rows_out=rows
    )
    if no_models is not None:
        report.rows["models"] = no_models
    if value.bgnbd is not None and value.gamma_gamma is not None:
        bg, gg = value.bgnbd, value.gamma_gamma
        report.rows["BG/NBD r, alpha, a, b"] = f"{bg.r:.3g}, {bg.alpha:.3g}, {bg.a:.3g}, {bg.b:.3g}"
        report.rows["BG/NBD log-likelihood"] = f"{bg.log_likelihood:.1f}"
        report.rows["Gamma-Gamma p, q, gamma"] = f"{gg.p:.3g}, {gg.q:.3g}, {gg.gamma:.3g}"
    if version is not None:
        segments = written.groupBy("segment_id", "segment_name").count().orderBy("segment_id")
        for row in segments.collect():  # k rows
            report.rows[f"segment {row['segment_id']} {row['segment_name']}"] = row["count"]
    for row in written.groupBy("lifecycle_stage").count().orderBy("lifecycle_stage").collect():
        report.rows[f"lifecycle {row['lifecycle_stage']}"] = row["count"]
    return report


def _scored(ctx: RunContext, features: DataFrame, version: str | None) -> DataFrame:
    """Features + the model outputs of ``version``; typed nulls without a model."""
    if version is None:
        return features.transform(without_models())
    segmentation = load_model(ctx, "segmentation", version)
    propensity = load_model(ctx, "propensity", version)
    # Propensity first: a hybrid propensity model adds its own segment columns internally.
    return score_segments(segmentation, score_propensity(propensity, features))


def _deciles(scored: DataFrame, version: str | None) -> Callable[[DataFrame], DataFrame]:
    """Propensity deciles from the snapshot's cut points (left null without a model)."""
    if version is None:
        return lambda profile: profile
    cutpoints = scored.approxQuantile(
        "purchase_propensity_30d", [i / 10 for i in range(1, 10)], DECILE_RELATIVE_ERROR
    )
    return with_deciles(cutpoints)


def _why_no_models(ctx: RunContext, as_of: dt.date, features: DataFrame) -> str:
    """The report's ``models`` row when no model serves the snapshot: why, and what to do."""
    behind = history(ctx.settings, features, as_of)
    nulls = f"none trained on or before {as_of}, segment and propensity columns are null"
    if behind.enough:
        # A forgotten train must not pass for a short history: stop before writing.
        raise MissingInputError(
            f"no model trained on or before {as_of}, and the history is long enough to "
            f"train one: run `userprofile train --as-of {as_of}` first"
        )
    return f"{nulls}: {behind.shortfall()} (train then, profile that date and later)"


def _publish_beside(ctx: RunContext, as_of: dt.date, profile: DataFrame) -> None:
    """Tag dictionary (current definitions), tag counts and lifecycle flows of the snapshot."""
    tables.overwrite(
        tag_dictionary(ctx.spark, ctx.settings.tags, utc_now()), ctx.table("tag_dictionary")
    )
    kill_point("profile.after_tag_dictionary")
    current = snapshot(profile, as_of)
    counts = tag_counts(current)
    tables.replace_partition(counts, ctx.table("tag_counts"), "snapshot_date", as_of)
    previous_date = newest_date(profile, before=as_of)
    previous = snapshot(profile, previous_date) if previous_date is not None else None
    flows = lifecycle_transitions(current, previous, as_of, previous_date)
    tables.replace_partition(flows, ctx.table("lifecycle_transitions"), "snapshot_date", as_of)
