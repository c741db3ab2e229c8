"""Customer value: RFM scores by quintiles and a named RFM segment.

Scores are 1 (worst) to 5 (best) among users who have purchased: recency by
days since the last purchase (fewer is better), frequency by purchases and
money by net revenue, all before the snapshot. The quintile cut points are
computed in Spark (``approxQuantile``), so only 12 numbers reach the driver.
Users who never purchased get no scores and no RFM segment (their lifecycle
stage is ``prospect``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userprofile.config import SegmentRule
from userprofile.config.rules import first_matching

QUINTILES = [0.2, 0.4, 0.6, 0.8]
RELATIVE_ERROR = 0.001
# score column -> (feature, True when a larger value is better)
RFM_INPUTS = {
    "r_score": ("days_since_last_purchase", False),
    "f_score": ("orders_total", True),
    "m_score": ("revenue_total", True),
}


@dataclass(frozen=True)
class RfmCuts:
    """Four quintile cut points per RFM input, among purchasers."""

    cuts: dict[str, list[float]]


def purchasers(features: DataFrame) -> DataFrame:
    return features.where(F.col("orders_total") > 0)


def rfm_cuts(features: DataFrame) -> RfmCuts:
    columns = [feature for feature, _ in RFM_INPUTS.values()]
    points = purchasers(features).approxQuantile(columns, QUINTILES, RELATIVE_ERROR)
    return RfmCuts(dict(zip(columns, points, strict=True)))


def _score(feature: str, larger_is_better: bool, cuts: list[float]) -> Column:
    """1..5: one plus the number of quintile cut points the value is better than."""
    value = F.col(feature)
    passed: Column = F.lit(1)
    for cut in cuts:
        better = value > F.lit(cut) if larger_is_better else value < F.lit(cut)
        passed = passed + better.cast("int")
    return F.when(F.col("orders_total") > 0, passed)


def rfm_segment(rules: list[SegmentRule]) -> Column:
    """The first rule (over r_score, f_score, m_score) that holds; null without purchases."""
    return F.when(F.col("orders_total") > 0, first_matching([(r.name, r.when) for r in rules]))


def with_rfm(cuts: RfmCuts, rules: list[SegmentRule]) -> Callable[[DataFrame], DataFrame]:
    def transform(features: DataFrame) -> DataFrame:
        scored = features.withColumns(
            {
                score: _score(feature, larger, cuts.cuts[feature])
                for score, (feature, larger) in RFM_INPUTS.items()
            }
        )
        return scored.withColumn("rfm_segment", rfm_segment(rules))

    return transform
