"""Behaviour segments: KMeans with k chosen by silhouette, named and kept stable across retrains.

The inputs describe *how* a user shops (conversion, price level, searching,
device and time habits, recency, tenure), not how much: activity volume is
heavy-tailed and would otherwise split every group into light and heavy users.

A fitted model is one ``PipelineModel``: preparation stages, KMeans, and a
SQL stage mapping KMeans' cluster index to a stable ``segment_id`` and its
``segment_name``. Stable means: a retrained model's clusters are matched to
the previous model's segments by centre distance, so an id and its name keep
their meaning across retrains (see ``match_segments``). Names say what sets a
segment apart from the population (``naming``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import SQLTransformer, StandardScalerModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import SegmentationConfig, SegmentRule
from userprofile.config.rules import analysis_error, first_matching
from userprofile.errors import ConfigError
from userprofile.features.catalog import CENTRE_COLUMNS
from userprofile.models import naming
from userprofile.models.preparation import (
    ModelInput,
    as_is,
    capped_days,
    input_columns,
    preparation_stages,
)

PREFIX = "seg"
SEGMENT_INPUTS: tuple[ModelInput, ...] = (
    as_is("orders_per_session"),
    ModelInput("log_avg_item_price", "ln(avg_item_price)"),
    as_is("search_share"),
    as_is("mobile_share"),
    as_is("night_share"),
    as_is("activity_trend"),
    capped_days("recency_days"),
    capped_days("tenure_days"),
)
STATUS_NEW, STATUS_KEPT, STATUS_MOVED, STATUS_RETIRED = "new", "kept", "moved", "retired"
# A cluster further than this many times `moved_distance` from every free previous segment
# is a new segment (and the previous one is retired), not a moved one.
MATCH_LIMIT = 3.0


@dataclass(frozen=True)
class Segment:
    """One segment of a trained model, as kept in ``segment_summary``."""

    segment_id: int
    name: str
    # Centre in prepared-input units (before scaling), in SEGMENT_INPUTS order.
    centre_inputs: tuple[float, ...]
    status: str = STATUS_NEW
    moved_distance: float | None = None
    cluster_index: int | None = None


def preparation(inputs: tuple[ModelInput, ...] = SEGMENT_INPUTS) -> Pipeline:
    return Pipeline(stages=preparation_stages(PREFIX, inputs))


def silhouettes(prepared_sample: DataFrame, cfg: SegmentationConfig) -> dict[int, float]:
    """Silhouette (squared Euclidean) of KMeans for each k in the configured range."""
    evaluator = ClusteringEvaluator(featuresCol=f"{PREFIX}_scaled", predictionCol="cluster")
    scores: dict[int, float] = {}
    for k in range(cfg.k_min, cfg.k_max + 1):
        model = fit_kmeans(prepared_sample, k, cfg)
        scores[k] = float(evaluator.evaluate(model.transform(prepared_sample)))
    return scores


def best_k(scores: dict[int, float], previous_k: int | None = None, margin: float = 0.0) -> int:
    """The k with the highest silhouette (the smaller k on a tie).

    The previous model's k is kept unless another k beats it by more than
    ``margin``: silhouettes of neighbouring k are often close, and flipping k on
    a day-to-day wobble would retire and create segments for nothing.
    """
    best = max(sorted(scores), key=lambda k: scores[k])
    if previous_k in scores and scores[best] - scores[previous_k] <= margin:
        return previous_k
    return best


def fit_kmeans(prepared: DataFrame, k: int, cfg: SegmentationConfig) -> KMeansModel:
    """The lowest-cost of ``cfg.restarts`` KMeans fits with consecutive seeds.

    One k-means|| start can land in a poor local optimum; on the next day's data
    it may land elsewhere, which would make both the silhouette and the segments
    jump. The best of a few starts is far more reproducible.
    """
    fits = [_kmeans(k, cfg.seed + i, cfg).fit(prepared) for i in range(cfg.restarts)]
    return min(fits, key=lambda m: m.summary.trainingCost)


def _kmeans(k: int, seed: int, cfg: SegmentationConfig) -> KMeans:
    return KMeans(
        k=k,
        seed=seed,
        maxIter=cfg.max_iter,
        featuresCol=f"{PREFIX}_scaled",
        predictionCol="cluster",
    )


def centres_in_input_units(prep: PipelineModel, kmeans: KMeansModel) -> list[tuple[float, ...]]:
    """KMeans centres mapped back from standardised to prepared-input units."""
    scaler = prep.stages[-1]
    assert isinstance(scaler, StandardScalerModel)
    mean, std = scaler.mean.toArray(), scaler.std.toArray()
    return [
        tuple(float(c * s + m) for c, s, m in zip(centre, std, mean, strict=True))
        for centre in kmeans.clusterCenters()
    ]


def input_scale(prep: PipelineModel) -> tuple[float, ...]:
    scaler = prep.stages[-1]
    assert isinstance(scaler, StandardScalerModel)
    return tuple(float(s) if s > 0 else 1.0 for s in scaler.std.toArray())


def distance(a: tuple[float, ...], b: tuple[float, ...], scale: tuple[float, ...]) -> float:
    """Root-mean-square difference in standard deviations of the inputs."""
    squares = [((x - y) / s) ** 2 for x, y, s in zip(a, b, scale, strict=True)]
    return math.sqrt(sum(squares) / len(squares))


def match_segments(
    clusters: list[tuple[float, ...]],
    sizes: list[int],
    previous: list[Segment],
    scale: tuple[float, ...],
    moved_distance: float,
) -> list[Segment]:
    """Give each new cluster a stable id: the nearest previous segment's, greedily by distance.

    Within ``moved_distance`` a segment is ``kept`` (with its name), within
    ``MATCH_LIMIT`` times that it is ``moved`` (same id, named afresh); a cluster
    with no previous segment that near is ``new`` with a fresh id (ids are never
    reused), and unmatched previous segments come back as ``retired``.
    """
    pairs = sorted(
        (distance(c, p.centre_inputs, scale), i, j)
        for i, c in enumerate(clusters)
        for j, p in enumerate(previous)
    )
    taken_new: dict[int, tuple[int, float]] = {}
    taken_old: set[int] = set()
    for d, i, j in pairs:
        if d <= MATCH_LIMIT * moved_distance and i not in taken_new and j not in taken_old:
            taken_new[i] = (j, d)
            taken_old.add(j)
    next_id = max((p.segment_id for p in previous), default=-1) + 1
    # New clusters are numbered largest first, so a first model's ids follow size.
    by_size = sorted(range(len(clusters)), key=lambda i: (-sizes[i], i))
    segments: list[Segment] = []
    for i in by_size:
        if i in taken_new:
            j, d = taken_new[i]
            status = STATUS_KEPT if d <= moved_distance else STATUS_MOVED
            old = previous[j]
            name = old.name if status == STATUS_KEPT else ""
            segments.append(Segment(old.segment_id, name, clusters[i], status, d, i))
        else:
            segments.append(Segment(next_id, "", clusters[i], STATUS_NEW, None, i))
            next_id += 1
    retired = [
        replace(p, status=STATUS_RETIRED, cluster_index=None, moved_distance=None)
        for j, p in enumerate(previous)
        if j not in taken_old
    ]
    return segments + retired


def centres_in_original_units(scored: DataFrame, *extra: Column) -> DataFrame:
    """Per KMeans cluster: users, the median of each centre column and ``extra`` (k rows)."""
    medians = [F.percentile_approx(c, 0.5, 1000).alias(c) for c in CENTRE_COLUMNS]
    return scored.groupBy("cluster").agg(F.count(F.lit(1)).alias("users"), *medians, *extra)


def naming_expression(rules: list[SegmentRule]) -> Column:
    """The name of the first override rule whose condition holds for a centre row."""
    return first_matching([(r.name, r.when) for r in rules])


def check_naming_rules(spark: SparkSession, rules: list[SegmentRule]) -> None:
    """Analyse each rule against the centre columns before any data is read."""
    schema = ", ".join(f"`{c}` double" for c in ("users", *CENTRE_COLUMNS))
    for index, rule in enumerate(rules):
        error = analysis_error(spark, schema, rule.when)
        if error is not None:
            raise ConfigError(
                f"segmentation.names[{index}].when (segment name '{rule.name}') is not a valid "
                f"expression over a segment centre ({', '.join(CENTRE_COLUMNS)}, users): {error}"
            )


def name_segments(
    segments: list[Segment],
    overrides: Mapping[int, str | None],
    centres: Mapping[int, Mapping[str, float | None]],
    quantiles: naming.Quantiles,
    cfg: SegmentationConfig,
) -> list[Segment]:
    """Name the live segments that have no name (new and moved ones; kept ones keep theirs).

    By cluster index: an override rule's name, else what sets the centre apart
    from the population's ``quantiles``; every name differs from the others and
    from the kept ones, without numbers (see ``naming.unique_names``).
    """
    live = [s for s in segments if s.status != STATUS_RETIRED]
    drafts = [
        naming.draft(s.segment_id, overrides.get(i), centres.get(i, {}), quantiles, cfg.recent_days)
        for s in live
        if not s.name and (i := s.cluster_index) is not None
    ]
    names = naming.unique_names(drafts, [s.name for s in live if s.name], cfg.name_words)
    return [replace(s, name=names[s.segment_id]) if s.segment_id in names else s for s in segments]


def labelling_stage(segments: list[Segment]) -> SQLTransformer:
    """Cluster index -> stable ``segment_id`` and ``segment_name``."""
    live = [s for s in segments if s.cluster_index is not None]
    ids = " ".join(f"WHEN {s.cluster_index} THEN {s.segment_id}" for s in live)
    names = " ".join(f"WHEN {s.cluster_index} THEN '{_sql_text(s.name)}'" for s in live)
    return SQLTransformer(
        statement=(
            f"SELECT *, CAST(CASE cluster {ids} END AS INT) AS segment_id, "
            f"CASE cluster {names} END AS segment_name FROM __THIS__"
        )
    )


def _sql_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def segmentation_model(
    prep: PipelineModel, kmeans: KMeansModel, segments: list[Segment]
) -> PipelineModel:
    return PipelineModel(stages=[*prep.stages, kmeans, labelling_stage(segments)])


def score_segments(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Features + ``segment_id`` and ``segment_name``."""
    scored = model.transform(features)
    return scored.select(*features.columns, "segment_id", "segment_name")


def segment_inputs() -> list[str]:
    return input_columns(PREFIX, SEGMENT_INPUTS)
