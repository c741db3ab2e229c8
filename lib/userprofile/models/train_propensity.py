"""Fitting the purchase-propensity model on a labelled snapshot, with its evaluation.

The label is a purchase in the ``label_days`` after the training snapshot. The
configured variant (plain or hybrid) is tuned; the other is fitted with the same
regularisation on the same rows and reported, to show whether feeding the
segment helps. A leak guard refuses training data that has seen its label window.
"""

from __future__ import annotations

import datetime as dt

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.config import PropensityConfig, TagRule
from userprofile.errors import LeakageError, MissingInputError
from userprofile.features.build import purchase_labels, with_labels
from userprofile.models import propensity as prop
from userprofile.models.metrics import Metrics, add_group_lift
from userprofile.models.preparation import right_sized, with_values

# Rows sampled to test each propensity input for leakage (AUC against the label).
LEAK_CHECK_ROWS = 50_000


def labelled_snapshot(
    features: DataFrame, events: DataFrame, train_date: dt.date, label_days: int
) -> DataFrame:
    """The training snapshot's features with ``purchased``: a purchase in the label window."""
    labels = purchase_labels(train_date, label_days)(events)
    return features.transform(with_labels(labels))


def split_holdout(
    labelled: DataFrame, holdout_share: float, seed: int
) -> tuple[DataFrame, DataFrame]:
    """Deterministic split by user key (the same users are held out on every run)."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), "user_key"), F.lit(10_000)) / 10_000.0
    return labelled.where(bucket >= holdout_share), labelled.where(bucket < holdout_share)


def fit_propensity(
    labelled: DataFrame,
    cfg: PropensityConfig,
    train_date: dt.date,
    segmentation: PipelineModel,
    tag_rules: list[TagRule],
    metrics: Metrics,
) -> PipelineModel:
    labelled = labelled.cache()
    fit_rows, holdout = split_holdout(labelled, cfg.holdout_share, cfg.seed)
    positive_share, rows = positive_share_and_rows(fit_rows, train_date, cfg.label_days)
    weighted = prop.with_class_weight(fit_rows, positive_share)
    check_no_leak(labelled, weighted, rows, cfg)
    training_columns = (prop.LABEL, "class_weight")

    inputs = with_values(weighted, prop.PROPENSITY_INPUTS)
    prep = prop.preparation(segmentation if cfg.hybrid else None, inputs).fit(weighted)
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
    other_prep = prop.preparation(None if cfg.hybrid else segmentation, inputs).fit(weighted)
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
    _add_holdout_metrics(metrics, scored, threshold, positive_share)
    other = variants[not cfg.hybrid].transform(holdout)
    other_eval = prop.evaluate(other, prop.SCORE, threshold)
    name = "plain" if cfg.hybrid else "hybrid"
    metrics.add(f"propensity_{name}", "auc_roc", other_eval.auc_roc)
    metrics.add(f"propensity_{name}", "auc_pr", other_eval.auc_pr)
    scored.unpersist()
    add_group_lift(metrics, labelled, segmentation, tag_rules)
    labelled.unpersist()
    return model


def _add_holdout_metrics(
    metrics: Metrics, scored: DataFrame, threshold: float, positive_share: float
) -> None:
    """The model's and the baseline's quality on held-out users: AUCs, ROC points, lift."""
    metrics.add_evaluation("propensity", prop.evaluate(scored, prop.SCORE, threshold))
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


def positive_share_and_rows(
    fit_rows: DataFrame, train_date: dt.date, label_days: int
) -> tuple[float, int]:
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


def check_no_leak(
    labelled: DataFrame, weighted: DataFrame, rows: int, cfg: PropensityConfig
) -> None:
    """Refuse training data that has seen its label window.

    Two checks: no feature row may have an event on or after its snapshot date
    (recency below one day), and no single input may predict the label almost
    perfectly, which in purchase data means it was computed from the label window.
    """
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
