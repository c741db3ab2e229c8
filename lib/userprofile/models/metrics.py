"""Training metrics: collected as (model, metric, slice) -> value, stored as long rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import TagRule
from userprofile.models import propensity as prop
from userprofile.models import segmentation as seg
from userprofile.profile.tags import rules_over, tags

METRICS_COLUMNS = (
    "run_id string, snapshot_date date, training_snapshot date, model string, "
    "model_version string, metric string, slice string, value double, config_hash string, "
    "model_path string, trained_at timestamp"
)
# Metrics of these models are measured on the propensity's training snapshot.
ON_TRAINING_SNAPSHOT = ("propensity", "baseline", "group")
EVALUATION_METRICS = (
    "rows",
    "positives",
    "auc_roc",
    "auc_pr",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "brier",
)


@dataclass
class Metrics:
    """(model, metric, slice) -> value, written as rows of ``model_metrics``."""

    values: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def add(self, model: str, metric: str, value: float, slice_: str = "") -> None:
        self.values[(model, metric, slice_)] = float(value)

    def add_evaluation(self, model: str, ev: prop.Evaluation) -> None:
        for metric in EVALUATION_METRICS:
            self.add(model, metric, getattr(ev, metric))


@dataclass(frozen=True)
class MetricsProvenance:
    """What every metrics row of one training run records besides its value."""

    run_id: str
    as_of: dt.date
    train_date: dt.date
    config_hash: str
    model_paths: dict[str, str]
    trained_at: dt.datetime


def metrics_frame(spark: SparkSession, metrics: Metrics, run: MetricsProvenance) -> DataFrame:
    rows = [
        (
            run.run_id,
            run.as_of,
            run.train_date if model.startswith(ON_TRAINING_SNAPSHOT) else run.as_of,
            model,
            run.run_id,
            metric,
            slice_,
            value,
            run.config_hash,
            run.model_paths["segmentation" if model == "segmentation" else "propensity"],
            run.trained_at,
        )
        for (model, metric, slice_), value in metrics.values.items()
    ]
    return spark.createDataFrame(rows, METRICS_COLUMNS)


def add_group_lift(
    metrics: Metrics, labelled: DataFrame, segmentation: PipelineModel, rules: list[TagRule]
) -> None:
    """P(purchase | tag or segment) against P(purchase) on the training snapshot."""
    segmented = seg.score_segments(segmentation, labelled)
    # Tags over scores (e.g. propensity deciles) do not exist on the training snapshot.
    usable = rules_over(rules, segmented.columns)
    grouped = segmented.select(
        prop.LABEL,
        F.concat(F.lit("segment="), F.col("segment_id").cast("string")).alias("segment"),
        tags(usable).alias("tags"),
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
