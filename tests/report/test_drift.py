"""Drift between snapshots: PSI by hand, per-feature verdicts, shifts in category shares."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from userprofile.report import drift


def test_psi_is_zero_for_equal_shares_and_large_for_a_shift() -> None:
    assert drift.psi([10, 20, 30], [100, 200, 300]) == pytest.approx(0.0)
    # Shares 0.5/0.5 -> 0.9/0.1: (0.4 ln 1.8) + (-0.4 ln 0.2) = 0.879
    assert drift.psi([50, 50], [90, 10]) == pytest.approx(0.4 * 0.5878 + 0.4 * 1.6094, abs=1e-3)


def test_feature_drift_flags_only_the_shifted_feature(spark: SparkSession) -> None:
    previous = spark.createDataFrame(
        [(float(i % 100), float(i % 50)) for i in range(2000)], "steady double, moving double"
    )
    current = spark.createDataFrame(
        [(float(i % 100), float(i % 50) + 30.0) for i in range(2000)],
        "steady double, moving double",
    )
    result = {d.feature: d for d in drift.feature_drift(previous, current, ["steady", "moving"])}
    assert result["steady"].psi == pytest.approx(0.0, abs=0.01)
    assert result["steady"].verdict == "stable"
    assert result["moving"].verdict == "significant"
    assert result["moving"].current_median == pytest.approx(
        result["moving"].previous_median + 30, abs=1
    )


def test_share_shift_lists_values_of_both_snapshots(spark: SparkSession) -> None:
    previous = spark.createDataFrame([("a",), ("a",), ("b",), (None,)], "stage string")
    current = spark.createDataFrame([("a",), ("c",)], "stage string")
    assert drift.share_shift(previous, current, "stage") == [
        ("(none)", 0.25, 0.0),
        ("a", 0.5, 0.5),
        ("b", 0.25, 0.0),
        ("c", 0.0, 0.5),
    ]
