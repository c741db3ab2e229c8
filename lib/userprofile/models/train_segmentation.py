"""Fitting the segmentation: k by silhouette, KMeans, stable ids and names, the summary rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from userprofile.config import SegmentationConfig
from userprofile.features.catalog import CENTRE_COLUMNS
from userprofile.models import naming
from userprofile.models import segmentation as seg
from userprofile.models.metrics import Metrics
from userprofile.models.preparation import right_sized, with_values

SUMMARY_COLUMNS = (
    "snapshot_date date, model_version string, segment_id int, segment_name string, "
    "status string, users long, share double, moved_distance double, "
    "centre map<string, double>, centre_inputs array<double>, input_names array<string>, "
    "trained_at timestamp"
)


@dataclass
class TrainedSegmentation:
    model: PipelineModel
    segments: list[seg.Segment]
    centres: dict[int, dict[str, float]]
    sizes: dict[int, int]


def fit_segmentation(
    snapshot: DataFrame,
    cfg: SegmentationConfig,
    previous: list[seg.Segment],
    metrics: Metrics,
) -> TrainedSegmentation:
    """Fit on one snapshot's features; ids and names follow the ``previous`` model's segments."""
    prep = seg.preparation(with_values(snapshot, seg.SEGMENT_INPUTS)).fit(snapshot)
    users = snapshot.count()
    columns = (f"{seg.PREFIX}_scaled", *CENTRE_COLUMNS)
    # Sorted: the sample and KMeans' starts then depend on the users, not on how the
    # feature files happen to be laid out (a MERGE or a compaction must not move segments).
    ordered = prep.transform(snapshot).orderBy("user_key").select(*columns)
    prepared = right_sized(ordered, users).cache()
    share = min(1.0, cfg.sample_size / users)
    sample = right_sized(prepared.sample(fraction=share, seed=cfg.seed), int(users * share)).cache()
    scores = seg.silhouettes(sample, cfg)
    sample.unpersist()
    k = seg.best_k(scores, len(previous) or None, cfg.k_switch_margin)
    for candidate, score in scores.items():
        metrics.add("segmentation", "silhouette", score, f"k={candidate}")
    metrics.add("segmentation", "k", k)
    kmeans = seg.fit_kmeans(prepared, k, cfg)
    # Names place each centre among all training users: percentiles in Spark, 101 per feature.
    quantiles = naming.population_quantiles(prepared)
    centre_rows = seg.centres_in_original_units(
        kmeans.transform(prepared), *naming.centre_medians()
    )
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
    segments = seg.name_segments(
        matched,
        {i: r["rule_name"] for i, r in by_cluster.items()},
        {i: naming.centre_of(r) for i, r in by_cluster.items()},
        quantiles,
        cfg,
    )
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


def summary_frame(
    spark: SparkSession,
    as_of: dt.date,
    model_version: str,
    trained: TrainedSegmentation,
    trained_at: dt.datetime,
) -> DataFrame:
    """Rows of ``segment_summary``: one per segment of the model, retired ones included."""
    total = sum(trained.sizes.values()) or 1
    rows = [
        (
            as_of,
            model_version,
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
    return spark.createDataFrame(rows, SUMMARY_COLUMNS)
