"""How far a snapshot moved from the previous one: PSI per feature, share shifts.

The population stability index compares the share of users in each bin of a
feature, with bins cut at the previous snapshot's deciles:
``PSI = sum((cur - prev) * ln(cur / prev))``. Rule of thumb: < 0.1 stable,
0.1-0.25 moderate, > 0.25 a significant shift. Everything is aggregated in
Spark; only bin counts reach the driver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Shares below this are floored so an empty bin does not make the PSI infinite.
MIN_SHARE = 1e-4
STABLE, MODERATE = 0.1, 0.25


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    previous_median: float | None
    current_median: float | None

    @property
    def verdict(self) -> str:
        if self.psi < STABLE:
            return "stable"
        return "moderate" if self.psi < MODERATE else "significant"


def psi(previous: list[int], current: list[int]) -> float:
    """PSI of two histograms over the same bins."""
    prev_total, cur_total = sum(previous) or 1, sum(current) or 1
    total = 0.0
    for p, c in zip(previous, current, strict=True):
        p_share = max(p / prev_total, MIN_SHARE)
        c_share = max(c / cur_total, MIN_SHARE)
        total += (c_share - p_share) * math.log(c_share / p_share)
    return total


def feature_drift(
    previous: DataFrame, current: DataFrame, features: list[str], bins: int = 10
) -> list[FeatureDrift]:
    """PSI of each numeric feature, bins at the previous snapshot's quantiles."""
    probabilities = [i / bins for i in range(1, bins)] + [0.5]
    cuts = previous.approxQuantile(features, probabilities, 0.001)
    medians_now = current.approxQuantile(features, [0.5], 0.001)
    edges = {f: sorted(set(c[:-1])) for f, c in zip(features, cuts, strict=True)}
    prev_counts = _bin_counts(previous, edges)
    cur_counts = _bin_counts(current, edges)
    result = []
    for i, feature in enumerate(features):
        width = len(edges[feature]) + 2  # below the first cut ... above the last, and nulls
        prev_hist = [prev_counts.get((feature, b), 0) for b in range(width)]
        cur_hist = [cur_counts.get((feature, b), 0) for b in range(width)]
        result.append(
            FeatureDrift(
                feature,
                psi(prev_hist, cur_hist),
                cuts[i][-1] if cuts[i] else None,
                medians_now[i][0] if medians_now[i] else None,
            )
        )
    return result


def _bin_counts(frame: DataFrame, edges: dict[str, list[float]]) -> dict[tuple[str, int], int]:
    cells = [
        F.struct(F.lit(f).alias("feature"), _bin(f, cuts).alias("bin")) for f, cuts in edges.items()
    ]
    rows = (
        frame.select(F.explode(F.array(*cells)).alias("cell"))
        .groupBy("cell.feature", "cell.bin")
        .count()
        .collect()  # at most features x (bins + 2) rows
    )
    return {(r["feature"], r["bin"]): r["count"] for r in rows}


def _bin(feature: str, cuts: list[float]) -> Column:
    """0..len(cuts) by position against the cuts; len(cuts) + 1 for nulls."""
    position: Column = F.lit(0)
    for cut in cuts:
        position = position + (F.col(feature) > F.lit(cut)).cast("int")
    return F.when(F.col(feature).isNull(), F.lit(len(cuts) + 1)).otherwise(position)


def share_shift(
    previous: DataFrame, current: DataFrame, column: str
) -> list[tuple[str, float, float]]:
    """(value, previous share, current share) of a categorical column, both snapshots."""

    def shares(frame: DataFrame) -> dict[str, float]:
        rows = (
            frame.groupBy(F.coalesce(F.col(column).cast("string"), F.lit("(none)")).alias("v"))
            .count()
            .collect()
        )
        total = sum(r["count"] for r in rows) or 1
        return {r["v"]: r["count"] / total for r in rows}

    before, now = shares(previous), shares(current)
    return [(v, before.get(v, 0.0), now.get(v, 0.0)) for v in sorted(before.keys() | now.keys())]
