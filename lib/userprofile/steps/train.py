"""`userprofile train`: fit segmentation and propensity models, keep their metrics.

Segments are fitted on the snapshot itself. The propensity model is trained on
the snapshot ``label_days`` earlier, whose label window [t, t + label_days)
ends exactly at the snapshot date, so it is complete and nothing after the
snapshot is used. Both models are saved under ``storage.models/<model>/<run id>``;
the run id is the model version the profile records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile import propensity as prop
from userprofile import segmentation as seg
from userprofile import tables
from userprofile.catalog import CENTRE_COLUMNS
from userprofile.errors import LeakageError, MissingInputError
from userprofile.features import purchase_labels, with_labels
from userprofile.models import right_sized
from userprofile.profile import tags
from userprofile.steps import tracking
from userprofile.steps.common import RunContext, StepReport, Stopwatch
from userprofile.steps.features import compute_features, stitched_events
from userprofile.steps.tag_rules import check_tag_rules, rules_over

METRICS_COLUMNS = (
    "run_id string, snapshot_date date, training_snapshot date, model string, "
    "model_version string, metric string, slice string, value double, config_hash string, "
    "model_path string, trained_at timestamp"
)
SUMMARY_COLUMNS = (
    "snapshot_date date, model_version string, segment_id int, segment_name string, "
    "status string, users long, share double, moved_distance double, "
    "centre map<string, double>, centre_inputs array<double>, input_names array<string>, "
    "trained_at timestamp"
)
# Rows sampled to test each propensity input for leakage (AUC against the label).
LEAK_CHECK_ROWS = 50_000


@dataclass
class Metrics:
    """(model, metric, slice) -> value, written as rows of ``model_metrics``."""

    values: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def add(self, model: str, metric: str, value: float, slice_: str = "") -> None:
        self.values[(model, metric, slice_)] = float(value)


@dataclass
class TrainedSegmentation:
    model: PipelineModel
    segments: list[seg.Segment]
    centres: dict[int, dict[str, float]]
    sizes: dict[int, int]


def model_path(ctx: RunContext, model: str, version: str) -> str:
    return os.path.join(ctx.settings.storage.models, model, version)


def config_hash(ctx: RunContext) -> str:
    """Hash of the settings that shape the models (features, segmentation, propensity)."""
    s = ctx.settings
    relevant = {
        "features": s.features.model_dump(),
        "segmentation": s.segmentation.model_dump(),
        "propensity": s.propensity.model_dump(),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def run_train(ctx: RunContext, as_of: dt.date, retrain_after_days: int = 0) -> StepReport:
    clock = Stopwatch()
    reused = _recent_model(ctx, as_of, retrain_after_days)
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
    seg.check_naming_rules(ctx.spark, ctx.settings.segmentation.names)
    snapshot = ctx.read("user_features").where(F.col("snapshot_date") == F.lit(as_of))
    check_tag_rules(ctx.spark, snapshot, rules_over(ctx.settings.tags, snapshot.columns))
    if snapshot.limit(1).count() == 0:
        raise MissingInputError(
            f"user_features has no rows for snapshot {as_of}: "
            f"run `userprofile features --as-of {as_of}` first"
        )
    metrics = Metrics()
    segmentation = _train_segmentation(ctx, snapshot, metrics)
    train_date = as_of - dt.timedelta(days=ctx.settings.propensity.label_days)
    propensity = _train_propensity(ctx, train_date, segmentation.model, metrics)
    segmentation.model.write().overwrite().save(model_path(ctx, "segmentation", ctx.run_id))
    propensity.write().overwrite().save(model_path(ctx, "propensity", ctx.run_id))

    trained_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    tables.append(
        _summary_frame(ctx, as_of, segmentation, trained_at), ctx.table("segment_summary")
    )
    tables.append(
        _metrics_frame(ctx, as_of, train_date, metrics, trained_at), ctx.table("model_metrics")
    )
    tracking.log_run(ctx, as_of, metrics.values, config_hash(ctx))
    return _report(ctx, train_date, segmentation, metrics, clock.seconds())


# ---------------------------------------------------------------- segmentation


def _train_segmentation(
    ctx: RunContext, snapshot: DataFrame, metrics: Metrics
) -> TrainedSegmentation:
    cfg = ctx.settings.segmentation
    prep = seg.preparation().fit(snapshot)
    users = snapshot.count()
    columns = (f"{seg.PREFIX}_scaled", *CENTRE_COLUMNS)
    prepared = right_sized(prep.transform(snapshot).select(*columns), users).cache()
    share = min(1.0, cfg.sample_size / users)
    sample = right_sized(prepared.sample(fraction=share, seed=cfg.seed), int(users * share)).cache()
    scores = seg.silhouettes(sample, cfg)
    sample.unpersist()
    previous = _previous_segments(ctx)
    k = seg.best_k(scores, len(previous) or None, cfg.k_switch_margin)
    for candidate, score in scores.items():
        metrics.add("segmentation", "silhouette", score, f"k={candidate}")
    metrics.add("segmentation", "k", k)
    kmeans = seg.fit_kmeans(prepared, k, cfg)
    centre_rows = seg.centres_in_original_units(kmeans.transform(prepared))
    named = centre_rows.select(
        "*", seg.naming_expression(cfg.names).alias("rule_name")
    ).collect()  # k rows
    prepared.unpersist()
    by_cluster = {int(r["cluster"]): r for r in named}
    clusters = seg.centres_in_input_units(prep, kmeans)
    sizes = [int(by_cluster[i]["users"]) if i in by_cluster else 0 for i in range(len(clusters))]
    matched = seg.match_segments(
        clusters, sizes, previous, seg.input_scale(prep), cfg.moved_distance
    )
    rule_names = {i: r["rule_name"] for i, r in by_cluster.items()}
    segments = seg.name_segments(matched, rule_names)
    centres = {
        s.segment_id: {c: _number(by_cluster[s.cluster_index][c]) for c in CENTRE_COLUMNS}
        for s in segments
        if s.cluster_index is not None
    }
    segment_sizes = {
        s.segment_id: sizes[s.cluster_index] for s in segments if s.cluster_index is not None
    }
    return TrainedSegmentation(
        seg.segmentation_model(prep, kmeans, segments), segments, centres, segment_sizes
    )


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")  # null median


def _previous_segments(ctx: RunContext) -> list[seg.Segment]:
    """The live segments of the newest model in ``segment_summary`` (none on a first run)."""
    ref = ctx.table("segment_summary")
    if not tables.exists(ctx.spark, ref):
        return []
    summary = tables.read(ctx.spark, ref)
    newest = summary.orderBy(F.col("trained_at").desc()).select("model_version").limit(1).collect()
    if not newest:
        return []
    rows = (
        summary.where(F.col("model_version") == newest[0]["model_version"])
        .where(F.col("status") != seg.STATUS_RETIRED)
        .collect()  # one row per segment
    )
    if any(list(r["input_names"]) != seg.segment_inputs() for r in rows):
        return []  # the inputs changed: centres are not comparable, start afresh
    return [
        seg.Segment(r["segment_id"], r["segment_name"], tuple(r["centre_inputs"])) for r in rows
    ]


def _summary_frame(
    ctx: RunContext, as_of: dt.date, trained: TrainedSegmentation, trained_at: dt.datetime
) -> DataFrame:
    total = sum(trained.sizes.values()) or 1
    rows = [
        (
            as_of,
            ctx.run_id,
            s.segment_id,
            s.name,
            s.status,
            trained.sizes.get(s.segment_id, 0),
            trained.sizes.get(s.segment_id, 0) / total,
            s.moved_distance,
            trained.centres.get(s.segment_id, {}),
            list(s.centre_inputs),
            seg.segment_inputs(),
            trained_at,
        )
        for s in trained.segments
    ]
    return ctx.spark.createDataFrame(rows, SUMMARY_COLUMNS)


# ---------------------------------------------------------------- propensity


def _train_propensity(
    ctx: RunContext, train_date: dt.date, segmentation: PipelineModel, metrics: Metrics
) -> PipelineModel:
    cfg = ctx.settings.propensity
    labelled = labelled_snapshot(ctx, train_date).cache()
    fit_rows, holdout = split_holdout(labelled, cfg.holdout_share, cfg.seed)
    positive_share, rows = _positive_share(fit_rows, train_date, cfg.label_days)
    weighted = prop.with_class_weight(fit_rows, positive_share)
    _check_no_leak(ctx, labelled, weighted, rows)
    training_columns = (prop.LABEL, "class_weight")

    # The configured variant is tuned; the other (plain or hybrid) is fitted with the same
    # regularisation on the same rows, to report whether feeding the segment helps.
    prep = prop.preparation(segmentation if cfg.hybrid else None).fit(weighted)
    features_col = prop.features_column(cfg.hybrid)
    prepared = prep.transform(weighted).select(features_col, *training_columns)
    prepared = right_sized(prepared, rows).cache()
    lr, tried = prop.tune(prepared, cfg, features_col)
    prepared.unpersist()
    for reg, mix, auc_pr in tried:
        metrics.add("propensity", "validation_auc_pr", auc_pr, f"reg={reg},mix={mix}")
    metrics.add("propensity", "reg_param", lr.getRegParam())
    metrics.add("propensity", "elastic_net_param", lr.getElasticNetParam())
    for name, value in prop.coefficients(lr, prop.input_names()).items():
        metrics.add("propensity", "coefficient", value, name)
    variants = {cfg.hybrid: prop.propensity_model(prep, lr, positive_share)}
    other_prep = prop.preparation(None if cfg.hybrid else segmentation).fit(weighted)
    other_col = prop.features_column(not cfg.hybrid)
    other_lr = (
        prop.classifier(cfg, other_col)
        .setRegParam(lr.getRegParam())
        .setElasticNetParam(lr.getElasticNetParam())
        .fit(right_sized(other_prep.transform(weighted).select(other_col, *training_columns), rows))
    )
    variants[not cfg.hybrid] = prop.propensity_model(other_prep, other_lr, positive_share)
    model = variants[cfg.hybrid]

    threshold = prop.choose_threshold(model.transform(fit_rows), prop.SCORE)
    scored = model.transform(holdout).withColumn("baseline", prop.baseline_score()).cache()
    _add_evaluation(metrics, "propensity", prop.evaluate(scored, prop.SCORE, threshold))
    metrics.add("propensity", "threshold", threshold)
    metrics.add("propensity", "train_positive_share", positive_share)
    baseline = prop.evaluate(scored, "baseline", float("inf"))
    metrics.add("baseline", "auc_roc", baseline.auc_roc)
    metrics.add("baseline", "auc_pr", baseline.auc_pr)
    for i, (fpr, tpr) in enumerate(prop.roc_points(scored, prop.SCORE)):
        metrics.add("propensity", "roc_fpr", fpr, f"point={i:03d}")
        metrics.add("propensity", "roc_tpr", tpr, f"point={i:03d}")
    for decile, users, buyers, lift in prop.lift_by_decile(scored, prop.SCORE):
        metrics.add("propensity", "lift", lift, f"decile={decile}")
        metrics.add("propensity", "decile_users", users, f"decile={decile}")
        metrics.add("propensity", "decile_purchasers", buyers, f"decile={decile}")
    other = variants[not cfg.hybrid].transform(holdout)
    other_eval = prop.evaluate(other, prop.SCORE, threshold)
    name = "plain" if cfg.hybrid else "hybrid"
    metrics.add(f"propensity_{name}", "auc_roc", other_eval.auc_roc)
    metrics.add(f"propensity_{name}", "auc_pr", other_eval.auc_pr)
    scored.unpersist()
    _add_group_lift(ctx, labelled, segmentation, metrics)
    labelled.unpersist()
    return model


def split_holdout(
    labelled: DataFrame, holdout_share: float, seed: int
) -> tuple[DataFrame, DataFrame]:
    """Deterministic split by user key (the same users are held out on every run)."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), "user_key"), F.lit(10_000)) / 10_000.0
    return labelled.where(bucket >= holdout_share), labelled.where(bucket < holdout_share)


def labelled_snapshot(ctx: RunContext, train_date: dt.date) -> DataFrame:
    label_days = ctx.settings.propensity.label_days
    label_end = train_date + dt.timedelta(days=label_days)
    labels = purchase_labels(train_date, label_days)(stitched_events(ctx, label_end))
    return compute_features(ctx, train_date).transform(with_labels(labels))


def _positive_share(fit_rows: DataFrame, train_date: dt.date, label_days: int) -> tuple[float, int]:
    """The share of buyers among the training rows, and the number of rows."""
    counts = {
        int(r[prop.LABEL]): r["count"] for r in fit_rows.groupBy(prop.LABEL).count().collect()
    }
    history = fit_rows.where(F.col("events_total") > 0).limit(1).count()
    if not history:
        raise MissingInputError(
            f"no events before {train_date}: the propensity model trains on the snapshot "
            f"{label_days} days before --as-of and needs history before it; choose a later --as-of"
        )
    if not counts.get(1) or not counts.get(0):
        raise MissingInputError(
            f"cannot train the propensity model on snapshot {train_date}: it needs users with and "
            f"without a purchase in the {label_days} days after it (found {counts}); "
            "is there enough history before that date?"
        )
    rows = counts[0] + counts[1]
    return counts[1] / rows, rows


def _check_no_leak(ctx: RunContext, labelled: DataFrame, weighted: DataFrame, rows: int) -> None:
    """Refuse training data that has seen its label window.

    Two checks: no feature row may have an event on or after its snapshot date
    (recency below one day), and no single input may predict the label almost
    perfectly, which in purchase data means it was computed from the label window.
    """
    cfg = ctx.settings.propensity
    youngest = labelled.agg(F.min("recency_days")).first()
    if youngest is not None and youngest[0] is not None and youngest[0] < 1:
        raise LeakageError(
            "training features include events on or after their snapshot date "
            f"(smallest recency_days = {youngest[0]}); features must see only earlier events"
        )
    # Raw inputs, before imputation: a leak must not hide behind filled-in medians.
    sample = weighted.sample(fraction=min(1.0, LEAK_CHECK_ROWS / max(rows, 1)), seed=cfg.seed)
    aucs = prop.single_input_aucs(prop.with_raw_inputs(sample), prop.raw_input_names())
    leaks = {n: a for n, a in aucs.items() if a > cfg.leak_auc}
    if leaks:
        listed = ", ".join(
            f"{n.removeprefix('prop_raw_')} (AUC {a:.3f})" for n, a in sorted(leaks.items())
        )
        raise LeakageError(
            f"input(s) predict the purchase label almost perfectly on their own: {listed}. "
            f"They were probably computed from the {cfg.label_days}-day label window; "
            f"refusing to train (threshold propensity.leak_auc = {cfg.leak_auc})"
        )


def _add_evaluation(metrics: Metrics, model: str, ev: prop.Evaluation) -> None:
    for metric in (
        "rows",
        "positives",
        "auc_roc",
        "auc_pr",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "brier",
    ):
        metrics.add(model, metric, getattr(ev, metric))


def _add_group_lift(
    ctx: RunContext, labelled: DataFrame, segmentation: PipelineModel, metrics: Metrics
) -> None:
    """P(purchase | tag or segment) against P(purchase) on the training snapshot."""
    segmented = seg.score_segments(segmentation, labelled)
    # Tags over scores (e.g. propensity deciles) do not exist on the training snapshot.
    rules = rules_over(ctx.settings.tags, segmented.columns)
    grouped = segmented.select(
        prop.LABEL,
        F.concat(F.lit("segment="), F.col("segment_id").cast("string")).alias("segment"),
        tags(rules).alias("tags"),
    )
    groups = grouped.select(
        prop.LABEL,
        F.explode(
            F.concat(F.array("segment"), F.transform("tags", lambda t: F.concat(F.lit("tag="), t)))
        ).alias("group"),
    )
    base = labelled.agg(F.count(F.lit(1)).alias("n"), F.sum(prop.LABEL).alias("p")).first()
    assert base is not None
    base_rate = (base["p"] or 0) / base["n"] if base["n"] else 0.0
    metrics.add("group_lift", "purchase_rate", base_rate, "all")
    metrics.add("group_lift", "users", base["n"], "all")
    stats = groups.groupBy("group").agg(F.count(F.lit(1)).alias("n"), F.sum(prop.LABEL).alias("p"))
    for r in stats.collect():  # one row per segment and tag
        rate = (r["p"] or 0) / r["n"]
        metrics.add("group_lift", "users", r["n"], r["group"])
        metrics.add("group_lift", "purchase_rate", rate, r["group"])
        metrics.add("group_lift", "lift", rate / base_rate if base_rate else 0.0, r["group"])


# ---------------------------------------------------------------- outputs


def _metrics_frame(
    ctx: RunContext, as_of: dt.date, train_date: dt.date, metrics: Metrics, trained_at: dt.datetime
) -> DataFrame:
    digest = config_hash(ctx)
    rows = [
        (
            ctx.run_id,
            as_of,
            train_date if model.startswith(("propensity", "baseline", "group")) else as_of,
            model,
            ctx.run_id,
            metric,
            slice_,
            value,
            digest,
            model_path(
                ctx, "segmentation" if model == "segmentation" else "propensity", ctx.run_id
            ),
            trained_at,
        )
        for (model, metric, slice_), value in metrics.values.items()
    ]
    return ctx.spark.createDataFrame(rows, METRICS_COLUMNS)


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
        "top-decile lift": round(m[("propensity", "lift", "decile=10")], 2),
    }
    for s in trained.segments:
        rows[f"segment {s.segment_id}"] = (
            f"{s.name} ({trained.sizes.get(s.segment_id, 0)} users, {s.status})"
        )
    return StepReport("train", rows, seconds, rows_in=sum(trained.sizes.values()))


def latest_model_version(ctx: RunContext, as_of: dt.date) -> str:
    """The newest training run for a snapshot on or before ``as_of``."""
    newest = _newest_model(ctx, as_of)
    if newest is None:
        raise MissingInputError(
            f"no trained models for a snapshot on or before {as_of}: run `userprofile train` first"
        )
    return newest[0]


def _newest_model(ctx: RunContext, as_of: dt.date) -> tuple[str, dt.date] | None:
    if not tables.exists(ctx.spark, ctx.table("model_metrics")):
        return None
    newest = (
        ctx.read("model_metrics")
        .where(F.col("snapshot_date") <= F.lit(as_of))
        .orderBy(F.col("snapshot_date").desc(), F.col("trained_at").desc())
        .select("run_id", "snapshot_date")
        .limit(1)
        .collect()
    )
    return (str(newest[0]["run_id"]), newest[0]["snapshot_date"]) if newest else None


def _recent_model(
    ctx: RunContext, as_of: dt.date, retrain_after_days: int
) -> tuple[str, dt.date] | None:
    """The newest model if it is younger than ``retrain_after_days`` at ``as_of``."""
    if retrain_after_days <= 0:
        return None
    newest = _newest_model(ctx, as_of)
    if newest is None or is_due(newest[1], as_of, retrain_after_days):
        return None
    return newest


def is_due(trained_on: dt.date, as_of: dt.date, retrain_after_days: int) -> bool:
    """Whether a model trained on ``trained_on`` should be replaced at ``as_of``."""
    return retrain_after_days <= 0 or (as_of - trained_on).days >= retrain_after_days
