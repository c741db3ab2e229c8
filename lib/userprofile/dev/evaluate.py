"""`userprofile evaluate`: judge the trained models against the generator's planted truth.

Only for generated data: it reads ``storage.ground_truth`` (which the
pipeline itself never reads) and reports

- the adjusted Rand index between segments and planted personas, and
- the propensity model's AUC on its held-out users next to the AUC of the
  generator's true purchase probabilities on the same users (the best any
  model can do on that data) and the recency/frequency baseline's.
"""

from __future__ import annotations

import datetime as dt
from math import comb

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.dev.generator import true_purchase_probability
from userprofile.errors import MissingInputError
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym_key
from userprofile.io import locations, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch
from userprofile.io.queries import stitched_events, stored_features
from userprofile.models.propensity import LABEL, SCORE, baseline_score
from userprofile.models.registry import latest_model_version, load_model
from userprofile.models.segmentation import score_segments
from userprofile.models.train_propensity import labelled_snapshot, split_holdout


def adjusted_rand_index(contingency: list[tuple[object, object, int]]) -> float:
    """ARI (Hubert and Arabie) from (cluster, class, count) cells of a contingency table."""
    rows: dict[object, int] = {}
    cols: dict[object, int] = {}
    for a, b, n in contingency:
        rows[a] = rows.get(a, 0) + n
        cols[b] = cols.get(b, 0) + n
    total = sum(rows.values())
    index = sum(comb(n, 2) for _, _, n in contingency)
    row_pairs = sum(comb(n, 2) for n in rows.values())
    col_pairs = sum(comb(n, 2) for n in cols.values())
    expected = row_pairs * col_pairs / comb(total, 2) if total > 1 else 0.0
    maximum = (row_pairs + col_pairs) / 2
    return (index - expected) / (maximum - expected) if maximum != expected else 1.0


def _truth(ctx: RunContext) -> DataFrame:
    path = locations.join(ctx.settings.storage.ground_truth, "users")
    if not tables.path_exists(ctx.spark, path):
        raise MissingInputError(
            f"no ground truth at {path}: `evaluate` is for data made by `userprofile generate`"
        )
    truth = ctx.spark.read.parquet(path)
    key = pseudonym_key(ctx.settings)
    return truth.withColumn("user_key", hmac_sha256_hex(key, F.col("user_id")))


def run_evaluate(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    truth = _truth(ctx).cache()
    version = latest_model_version(ctx, as_of)
    segmentation = load_model(ctx, "segmentation", version)
    propensity = load_model(ctx, "propensity", version)

    features = stored_features(ctx, as_of)
    segments = score_segments(segmentation, features).join(truth, "user_key")
    cells = segments.groupBy("segment_id", "persona").count().collect()  # k x personas cells
    ari = adjusted_rand_index([(r["segment_id"], r["persona"], r["count"]) for r in cells])

    cfg = ctx.settings.propensity
    train_date = as_of - dt.timedelta(days=cfg.label_days)
    # The training snapshot's features as stored when the model was trained.
    labelled = labelled_snapshot(
        stored_features(ctx, train_date),
        stitched_events(ctx, as_of),
        train_date,
        cfg.label_days,
    )
    _, holdout = split_holdout(labelled, cfg.holdout_share, cfg.seed)
    probabilities = true_purchase_probability(truth, train_date, cfg.label_days).join(
        truth.select("user_id", "user_key"), "user_id"
    )
    scored = (
        propensity.transform(holdout)
        .withColumn("baseline", baseline_score())
        .join(probabilities.select("user_key", "true_probability"), "user_key")
        .cache()
    )
    evaluator = BinaryClassificationEvaluator(labelCol=LABEL, metricName="areaUnderROC")
    aucs = {
        name: float(evaluator.setRawPredictionCol(column).evaluate(scored))
        for name, column in (
            ("model", SCORE),
            ("truth", "true_probability"),
            ("baseline", "baseline"),
        )
    }
    calibration = scored.agg(F.avg(SCORE), F.avg("true_probability"), F.avg(LABEL)).first()
    assert calibration is not None
    scored.unpersist()
    truth.unpersist()
    rows: dict[str, int | float | str] = {
        "model version": version,
        "segments vs personas (ARI)": round(ari, 3),
        "held-out users": int(scored.count()),
        "propensity AUC-ROC": round(aucs["model"], 3),
        "true-probability AUC-ROC": round(aucs["truth"], 3),
        "baseline AUC-ROC": round(aucs["baseline"], 3),
        "mean predicted / true / observed": (
            f"{calibration[0]:.3f} / {calibration[1]:.3f} / {calibration[2]:.3f}"
        ),
    }
    return StepReport("evaluate", rows, clock.seconds())
