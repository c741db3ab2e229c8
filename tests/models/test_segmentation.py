"""Segmentation: clusters keep their segment ids (and kept ones their names) across
retraining, the others are named afresh, and k is chosen by silhouette with a preference for
stability."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import SparkSession

from userprofile.config import SegmentationConfig, SegmentRule
from userprofile.errors import ConfigError
from userprofile.models.naming import NAMING_FEATURES
from userprofile.models.segmentation import (
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
    assert by_cluster[1].name == ""  # a moved segment is named afresh
    assert (by_cluster[2].segment_id, by_cluster[2].status) == (3, STATUS_NEW)  # ids not reused
    retired = [s for s in segments if s.status == STATUS_RETIRED]
    assert [(s.segment_id, s.name) for s in retired] == [(2, "gone")]


def test_distance_is_in_standard_deviations() -> None:
    previous = [Segment(0, "a", (0.0, 0.0))]
    near = match_segments([(3.0, 0.0)], [1], previous, (10.0, 1.0), moved_distance=1.0)
    assert near[0].status == STATUS_KEPT  # 3 units of an input whose spread is 10


def test_kept_segments_keep_their_names_and_the_others_are_named_afresh() -> None:
    segments = [
        Segment(0, "", (0.0,), cluster_index=0),
        Segment(1, "", (1.0,), status=STATUS_MOVED, cluster_index=1),
        Segment(2, "very recent, frequent", (2.0,), status=STATUS_KEPT, cluster_index=2),
        Segment(3, "", (3.0,), cluster_index=3),
        Segment(4, "gone", (4.0,), status=STATUS_RETIRED),
    ]
    # Percentiles of a population spread evenly over 0..100: a value v sits at q = v / 100.
    quantiles = dict.fromkeys(NAMING_FEATURES, tuple(float(i) for i in range(101)))
    centres = {
        0: {"recency_days": 95.0},
        1: {"recency_days": 5.0, "orders_90d": 80.0, "tenure_days": 60.0},
        2: {"recency_days": 50.0},
        3: {"tenure_days": 20.0},
    }
    cfg = SegmentationConfig(name_words=2)
    named = name_segments(segments, {3: "vip"}, centres, quantiles, cfg)
    assert [(s.segment_id, s.name) for s in named] == [
        (0, "long lapsed"),
        # Its words are the kept segment's name: one more word tells them apart.
        (1, "very recent, frequent, long-standing"),
        (2, "very recent, frequent"),
        (3, "vip"),
        (4, "gone"),
    ]


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
