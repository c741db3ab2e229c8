"""Fitting the purchase-propensity model on a labelled snapshot, with its evaluation.

The label is a purchase in the ``label_days`` after the training snapshot. The
configured variant (plain or hybrid) is tuned; the other is fitted with the same
regularisation on the same rows and reported, to show whether feeding the
segment helps. A leak guard refuses training data that has seen its label window.

Fitting cost is bounded: the regularisation grid is searched on at most
``tune_sample_size`` training users (``tuning_sample``: drawn by a seeded hash of the
user key, each class in proportion but at least a tenth of the sample), and only the
chosen pair is fitted on all training rows.
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
# Each class makes up at least this share of the regularisation search's sample (if it can).
MIN_CLASS_SHARE = 0.1


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
    positives = round(positive_share * rows)
    sampled = tuning_sample(weighted, rows - positives, positives, cfg)
    sample = None
    if sampled is not None:
        sample = prep.transform(sampled[0]).select(
            features_col, *training_columns, prop.SAMPLE_WEIGHT
        )
        sample = right_sized(sample, sampled[1]).cache()
    metrics.add("propensity", "tuning_rows", sampled[1] if sampled is not None else rows)
    lr, tried = prop.tune(prepared, cfg, features_col, sample)
    prepared.unpersist()
    if sample is not None:
        sample.unpersist()
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


def tuning_fractions(negatives: int, positives: int, size: int) -> tuple[float, float]:
    """Shares of the negative and of the positive training rows the regularisation search sees.

    (1.0, 1.0) when there are at most ``size`` rows. Otherwise each class is sampled in
    proportion, the rarer one raised to ``MIN_CLASS_SHARE`` of the sample when it has the
    rows (enough of them for the validation metric), and the sample is expected to hold
    ``size`` rows (``tuning_sample`` makes that a bound).
    """
    rows = negatives + positives
    if rows <= size:
        return 1.0, 1.0
    rare = min(negatives, positives)
    rare_rows = min(rare, max(size * rare / rows, size * MIN_CLASS_SHARE))
    rare_share, common_share = rare_rows / rare, (size - rare_rows) / (rows - rare)
    return (rare_share, common_share) if negatives == rare else (common_share, rare_share)


def tuning_sample(
    weighted: DataFrame, negatives: int, positives: int, cfg: PropensityConfig
) -> tuple[DataFrame, int] | None:
    """At most ``cfg.tune_sample_size`` of the training rows, and their number; None for all.

    Users are drawn by a hash of their key and the seed (the same users on every run,
    whatever the file layout); each class keeps the weight of the other's share among
    the drawn rows, and ``SAMPLE_WEIGHT`` is the number of training rows each stands for.
    """
    size = cfg.tune_sample_size
    shares = tuning_fractions(negatives, positives, size)
    if shares == (1.0, 1.0):
        return None
    draw = F.pmod(F.xxhash64(F.lit(cfg.seed), F.lit("tune"), "user_key"), F.lit(1 << 30))
    bought = F.col(prop.LABEL) > 0
    while True:
        limit = F.when(bought, F.lit(shares[1])).otherwise(F.lit(shares[0])) * (1 << 30)
        sample = weighted.where(draw < limit)
        counts = {
            int(r[prop.LABEL]): r["count"] for r in sample.groupBy(prop.LABEL).count().collect()
        }
        drawn = counts.get(0, 0) + counts.get(1, 0)
        if drawn <= size:
            break
        # A draw above its expectation: fewer of the same users (the hash keeps them nested).
        shares = (shares[0] * size / drawn, shares[1] * size / drawn)
    # Each class is expected to give 100 rows or more (or all it has): both are drawn.
    drawn_negatives, drawn_positives = max(counts.get(0, 0), 1), max(counts.get(1, 0), 1)
    weights = F.when(bought, F.lit(positives / drawn_positives)).otherwise(
        F.lit(negatives / drawn_negatives)
    )
    sample = prop.with_class_weight(sample, counts.get(1, 0) / drawn)
    return sample.withColumn(prop.SAMPLE_WEIGHT, weights), drawn


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
