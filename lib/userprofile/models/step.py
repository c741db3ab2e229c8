"""`userprofile train`: fit segmentation and propensity models, keep their metrics.

Segments are fitted on the snapshot itself. The propensity model is trained on
the snapshot ``label_days`` earlier, whose label window [t, t + label_days)
ends exactly at the snapshot date, so it is complete and nothing after the
snapshot is used. That snapshot's features are read from ``user_features``
through ``features_of``, which the pipeline wires to the features stage (build
them when missing); on its own the step reads stored features only. Both models
are saved under ``storage.models/<model>/<run id>``; the run id is the model
version the profile records.

With fewer than ``label_days + 1`` days from the first event to the snapshot the
training snapshot has no history, and the step refuses before fitting anything
(``NotEnoughHistoryError``, see ``registry.History``); the pipeline then goes on
without models.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial

from pyspark.sql import DataFrame

from userprofile.errors import MissingInputError, NotEnoughHistoryError
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now
from userprofile.io.faults import kill_point
from userprofile.io.queries import snapshot, stitched_events, stored_features
from userprofile.models import registry, tracking
from userprofile.models import segmentation as seg
from userprofile.models.metrics import Metrics, MetricsProvenance, metrics_frame
from userprofile.models.train_propensity import fit_propensity, labelled_snapshot
from userprofile.models.train_segmentation import (
    TrainedSegmentation,
    fit_segmentation,
    summary_frame,
)
from userprofile.profile.tags import check_tag_rules, rules_over

# A snapshot date -> that snapshot's user_features rows.
FeaturesOf = Callable[[dt.date], DataFrame]


def run_train(
    ctx: RunContext,
    as_of: dt.date,
    retrain_after_days: int = 0,
    features_of: FeaturesOf | None = None,
) -> StepReport:
    clock = Stopwatch()
    reused = registry.recent_model(ctx, as_of, retrain_after_days)
    if reused is not None:
        version, trained_on = reused
        return StepReport(
            "train",
            {
                "reused model version": version,
                "trained on snapshot": str(trained_on),
                "next training from": str(trained_on + dt.timedelta(days=retrain_after_days)),
            },
            clock.seconds(),
        )
    settings = ctx.settings
    seg.check_naming_rules(ctx.spark, settings.segmentation.names)
    current = snapshot(ctx.read("user_features"), as_of)
    check_tag_rules(ctx.spark, current, rules_over(settings.tags, current.columns))
    if current.limit(1).count() == 0:
        raise MissingInputError(
            f"user_features has no rows for snapshot {as_of}: "
            f"run `userprofile features --as-of {as_of}` first"
        )
    label_days = settings.propensity.label_days
    train_date = as_of - dt.timedelta(days=label_days)
    behind = registry.history(settings, current, as_of)
    if not behind.enough:
        raise NotEnoughHistoryError(
            f"no events before {train_date}: the propensity model trains on the snapshot "
            f"{label_days} days before --as-of; {behind.shortfall()}"
        )
    metrics = Metrics()
    registry.forget_unregistered_summaries(ctx)
    segmentation = fit_segmentation(
        current, settings.segmentation, registry.previous_segments(ctx), metrics
    )
    features = (features_of or partial(stored_features, ctx))(train_date)
    # Labels come from events up to the snapshot: the label window ends at as_of.
    labelled = labelled_snapshot(features, stitched_events(ctx, as_of), train_date, label_days)
    propensity = fit_propensity(
        labelled, settings.propensity, train_date, segmentation.model, settings.tags, metrics
    )
    registry.save_model(ctx, "segmentation", segmentation.model)
    registry.save_model(ctx, "propensity", propensity)
    kill_point("train.after_models_saved")

    trained_at = utc_now()
    summary = summary_frame(ctx.spark, as_of, ctx.run_id, segmentation, trained_at)
    # Written before model_metrics registers the version: a run killed in between leaves
    # summary rows of an unregistered version, which the next training removes.
    tables.append(summary, ctx.table("segment_summary"))
    kill_point("train.after_segment_summary")
    digest = registry.config_hash(settings)
    provenance = MetricsProvenance(
        ctx.run_id,
        as_of,
        train_date,
        digest,
        {m: registry.model_path(settings, m, ctx.run_id) for m in registry.MODELS},
        trained_at,
    )
    tables.append(metrics_frame(ctx.spark, metrics, provenance), ctx.table("model_metrics"))
    tracking.log_run(ctx, as_of, metrics.values, digest)
    return _report(ctx, train_date, segmentation, metrics, clock.seconds())


def _report(
    ctx: RunContext,
    train_date: dt.date,
    trained: TrainedSegmentation,
    metrics: Metrics,
    seconds: float,
) -> StepReport:
    m = metrics.values
    hybrid_name = "plain" if ctx.settings.propensity.hybrid else "hybrid"
    rows: dict[str, int | float | str] = {
        "model version": ctx.run_id,
        "segments (k by silhouette)": int(m[("segmentation", "k", "")]),
        "propensity trained on": str(train_date),
        "propensity AUC-ROC": round(m[("propensity", "auc_roc", "")], 3),
        "propensity AUC-PR": round(m[("propensity", "auc_pr", "")], 3),
        "baseline AUC-ROC": round(m[("baseline", "auc_roc", "")], 3),
        f"{hybrid_name} variant AUC-ROC": round(m[(f"propensity_{hybrid_name}", "auc_roc", "")], 3),
    }
    # Too few held-out users with distinct scores leave the top decile empty.
    top_lift = m.get(("propensity", "lift", "decile=10"))
    if top_lift is not None:
        rows["top-decile lift"] = round(top_lift, 2)
    for s in trained.segments:
        rows[f"segment {s.segment_id}"] = (
            f"{s.name} ({trained.sizes.get(s.segment_id, 0)} users, {s.status})"
        )
    return StepReport("train", rows, seconds, rows_in=sum(trained.sizes.values()))
