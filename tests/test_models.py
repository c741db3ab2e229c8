"""Model building blocks: segment matching and naming, ARI, calibration, leak AUCs."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import SegmentRule
from userprofile.errors import ConfigError
from userprofile.models import PriorCorrection
from userprofile.propensity import LABEL, single_input_aucs
from userprofile.segmentation import (
    STATUS_KEPT,
    STATUS_MOVED,
    STATUS_NEW,
    STATUS_RETIRED,
    Segment,
    best_k,
    check_naming_rules,
    match_segments,
    name_segments,
)
from userprofile.steps.evaluate import adjusted_rand_index

UNIT = (1.0, 1.0)


def test_first_model_numbers_segments_by_size() -> None:
    segments = match_segments([(0.0, 0.0), (5.0, 5.0)], [10, 30], [], UNIT, 1.0)
    assert [(s.segment_id, s.cluster_index, s.status) for s in segments] == [
        (0, 1, STATUS_NEW),
        (1, 0, STATUS_NEW),
    ]


def test_retrained_clusters_take_the_nearest_previous_id() -> None:
    previous = [
        Segment(0, "dormant", (0.0, 0.0)),
        Segment(1, "loyal", (10.0, 10.0)),
        Segment(2, "gone", (50.0, -50.0)),
    ]
    # Cluster 0 sits near "loyal", cluster 1 near "dormant" (moved far), cluster 2 is new.
    clusters = [(10.1, 9.9), (3.0, 0.0), (-30.0, 30.0)]
    segments = match_segments(clusters, [5, 5, 5], previous, UNIT, moved_distance=1.0)
    by_cluster = {s.cluster_index: s for s in segments}
    assert (by_cluster[0].segment_id, by_cluster[0].status, by_cluster[0].name) == (
        1,
        STATUS_KEPT,
        "loyal",
    )
    assert (by_cluster[1].segment_id, by_cluster[1].status) == (0, STATUS_MOVED)
    assert by_cluster[1].moved_distance == pytest.approx(math.sqrt(9 / 2))
    assert by_cluster[1].name == ""  # a moved segment is named afresh by the rules
    assert (by_cluster[2].segment_id, by_cluster[2].status) == (3, STATUS_NEW)  # ids not reused
    retired = [s for s in segments if s.status == STATUS_RETIRED]
    assert [(s.segment_id, s.name) for s in retired] == [(2, "gone")]


def test_distance_is_in_standard_deviations() -> None:
    previous = [Segment(0, "a", (0.0, 0.0))]
    near = match_segments([(3.0, 0.0)], [1], previous, (10.0, 1.0), moved_distance=1.0)
    assert near[0].status == STATUS_KEPT  # 3 units of an input whose spread is 10


def test_names_come_from_rules_and_are_unique() -> None:
    segments = [
        Segment(0, "", (0.0,), cluster_index=0),
        Segment(1, "", (1.0,), cluster_index=1),
        Segment(2, "loyal", (2.0,), status=STATUS_KEPT, cluster_index=2),
        Segment(3, "", (3.0,), cluster_index=3),
    ]
    named = name_segments(segments, {0: "new users", 1: "new users", 2: "other", 3: None})
    assert [s.name for s in named] == ["new users", "new users 2", "loyal", "segment 3"]


def test_best_k_prefers_the_smaller_k_on_a_tie() -> None:
    assert best_k({3: 0.41, 4: 0.52, 5: 0.52, 6: 0.3}) == 4


def test_best_k_keeps_the_previous_k_within_the_margin() -> None:
    scores = {4: 0.50, 5: 0.51, 6: 0.40}
    assert best_k(scores, previous_k=4, margin=0.02) == 4
    assert best_k(scores, previous_k=6, margin=0.02) == 5
    assert best_k(scores, previous_k=9, margin=0.02) == 5  # not among the candidates


def test_bad_naming_rule_names_the_rule(spark: SparkSession) -> None:
    rules = [SegmentRule(name="ok", when="recency_days > 30"), SegmentRule(name="bad", when="x >")]
    with pytest.raises(ConfigError, match=r"segmentation\.names\[1\]\.when \(segment name 'bad'\)"):
        check_naming_rules(spark, rules)
    unknown = [SegmentRule(name="typo", when="recency_dayz > 30")]
    with pytest.raises(ConfigError, match="recency_dayz"):
        check_naming_rules(spark, unknown)


def test_adjusted_rand_index_known_values() -> None:
    same = [("a", 1, 5), ("b", 2, 5)]
    assert adjusted_rand_index(same) == 1.0
    relabelled = [("x", 1, 5), ("y", 2, 5)]
    assert adjusted_rand_index(relabelled) == 1.0
    # Hubert and Arabie's formula by hand: clusters {a: 3, b: 3}, classes {1: 3, 2: 3},
    # cells a1=2, a2=1, b1=1, b2=2 -> index 2, expected 6*6/15 = 2.4, max 6.
    assert adjusted_rand_index([("a", 1, 2), ("a", 2, 1), ("b", 1, 1), ("b", 2, 2)]) == (
        pytest.approx((2 - 2.4) / (6 - 2.4))
    )


def test_prior_correction_restores_the_purchase_rate(spark: SparkSession, tmp_path: Path) -> None:
    """A class-weighted model's mean probability is ~0.5; corrected, it matches the real rate."""
    draw = random.Random(5)
    # P(y = 1 | x) = 0.02 + 0.02 x for x in 0..9: overlapping classes, about 11% positive.
    rows = [(float(i % 10), float(draw.random() < 0.02 + 0.02 * (i % 10))) for i in range(5000)]
    share = sum(y for _, y in rows) / len(rows)
    data = spark.createDataFrame(rows, f"x double, {LABEL} double").withColumn(
        "class_weight", F.when(F.col(LABEL) > 0, 1 - share).otherwise(share)
    )
    lr = LogisticRegression(featuresCol="v", labelCol=LABEL, weightCol="class_weight")
    correction = PriorCorrection(
        inputCol="rawPrediction", outputCol="p", logOddsOffset=PriorCorrection.offset_for(share)
    )
    fitted = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="v"), lr]).fit(data)
    model = PipelineModel(stages=[*fitted.stages, correction])
    model.write().overwrite().save(str(tmp_path / "m"))
    loaded = PipelineModel.load(str(tmp_path / "m"))
    weighted = fitted.transform(data).agg(F.avg(vector_to_array("probability")[1])).first()
    assert weighted is not None
    assert weighted[0] > 0.3  # what the weighting alone would report
    mean_p = loaded.transform(data).agg(F.avg("p")).first()
    assert mean_p is not None
    assert mean_p[0] == pytest.approx(share, abs=0.02)


def test_single_input_aucs_match_mllib(spark: SparkSession) -> None:
    rows = [
        ((i * 7919) % 1000 / 10.0, 1.0 if (i * 7919) % 1000 > 600 + (i % 7) * 40 else 0.0)
        for i in range(3000)
    ]
    data = spark.createDataFrame(rows, f"x double, {LABEL} double").withColumn("noise", F.rand(3))
    exact = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol="x").evaluate(data)
    aucs = single_input_aucs(data, ["x", "noise"])
    assert aucs["x"] == pytest.approx(exact, abs=0.005)
    assert aucs["noise"] < 0.6
