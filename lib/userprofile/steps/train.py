"""`userprofile train`: fit the segmentation and propensity pipelines, keep their metrics.

Segments are fitted on the snapshot itself. The propensity model is trained on
the snapshot ``label_days`` earlier, whose label window [t, t + label_days)
ends exactly at the snapshot date, so it is complete and nothing after the
snapshot is used.
"""

from __future__ import annotations

import datetime as dt
import os

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile import tables
from userprofile.errors import MissingInputError
from userprofile.features import purchase_labels, with_labels
from userprofile.models import (
    evaluate_propensity,
    propensity_pipeline,
    segmentation_pipeline,
    split_holdout,
    with_class_weight,
)
from userprofile.steps.common import RunContext, StepReport, Stopwatch
from userprofile.steps.features import compute_features, stitched_events

METRICS_COLUMNS = (
    "run_id string, snapshot_date date, model string, metric string, value double, "
    "model_path string, trained_at timestamp"
)


def model_path(ctx: RunContext, model: str, version: str) -> str:
    return os.path.join(ctx.settings.storage.models, model, version)


def run_train(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    cfg = ctx.settings.model
    snapshot = ctx.read("user_features").where(F.col("snapshot_date") == F.lit(as_of))
    if snapshot.limit(1).count() == 0:
        raise MissingInputError(
            f"user_features has no rows for snapshot {as_of}: "
            f"run `userprofile features --as-of {as_of}` first"
        )
    segmentation = segmentation_pipeline(cfg).fit(snapshot)
    segmentation.write().overwrite().save(model_path(ctx, "segmentation", ctx.run_id))

    train_date = as_of - dt.timedelta(days=cfg.label_days)
    labelled = _labelled_snapshot(ctx, train_date).cache()
    fit_rows, holdout = split_holdout(labelled, cfg.holdout_share, cfg.seed)
    if labelled.where(F.col("events_total") > 0).limit(1).count() == 0:
        raise MissingInputError(
            f"no events before {train_date}: the propensity model trains on the snapshot "
            f"{cfg.label_days} days before --as-of {as_of} and needs history before it; "
            "choose a later --as-of"
        )
    counts = {
        int(r["purchased"]): r["count"] for r in fit_rows.groupBy("purchased").count().collect()
    }
    if not counts.get(1) or not counts.get(0):
        raise MissingInputError(
            f"cannot train the propensity model on snapshot {train_date}: it needs users with and "
            f"without a purchase in the {cfg.label_days} days after it (found {counts}); "
            "is there enough history before that date?"
        )
    positive_share = counts[1] / (counts[0] + counts[1])
    propensity = propensity_pipeline(cfg).fit(with_class_weight(fit_rows, positive_share))
    propensity.write().overwrite().save(model_path(ctx, "propensity", ctx.run_id))
    auc_roc, auc_pr = evaluate_propensity(propensity, holdout)
    labelled.unpersist()

    metrics = {
        ("segmentation", "k"): float(cfg.k),
        ("propensity", "auc_roc"): auc_roc,
        ("propensity", "auc_pr"): auc_pr,
        ("propensity", "train_positive_share"): positive_share,
        ("propensity", "train_rows"): float(counts[0] + counts[1]),
    }
    tables.append(_metrics_frame(ctx, as_of, metrics), ctx.table("model_metrics"))
    rows: dict[str, int | float | str] = {
        "model version": ctx.run_id,
        "propensity AUC-ROC": round(auc_roc, 3),
        "propensity AUC-PR": round(auc_pr, 3),
        "trained on": str(train_date),
    }
    return StepReport("train", rows, clock.seconds())


def _labelled_snapshot(ctx: RunContext, train_date: dt.date) -> DataFrame:
    label_days = ctx.settings.model.label_days
    label_end = train_date + dt.timedelta(days=label_days)
    labels = purchase_labels(train_date, label_days)(stitched_events(ctx, label_end))
    return compute_features(ctx, train_date).transform(with_labels(labels))


def _metrics_frame(
    ctx: RunContext, as_of: dt.date, metrics: dict[tuple[str, str], float]
) -> DataFrame:
    trained_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [
        (ctx.run_id, as_of, model, metric, value, model_path(ctx, model, ctx.run_id), trained_at)
        for (model, metric), value in metrics.items()
    ]
    return ctx.spark.createDataFrame(rows, METRICS_COLUMNS)


def latest_model_version(ctx: RunContext, as_of: dt.date) -> str:
    """The newest training run for a snapshot on or before ``as_of``."""
    newest = (
        ctx.read("model_metrics")
        .where(F.col("snapshot_date") <= F.lit(as_of))
        .orderBy(F.col("snapshot_date").desc(), F.col("trained_at").desc())
        .select("run_id")
        .limit(1)
        .collect()
    )
    if not newest:
        raise MissingInputError(
            f"no trained models for a snapshot on or before {as_of}: run `userprofile train` first"
        )
    return str(newest[0]["run_id"])
