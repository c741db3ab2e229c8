"""Assembling the profile: propensity deciles from the snapshot's cut points."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from userprofile.profile.assemble import with_deciles


def test_deciles_from_cutpoints(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [(0.05,), (0.1,), (0.55,), (0.95,)], "purchase_propensity_30d double"
    )
    cuts = [0.1 * i for i in range(1, 10)]
    expected = spark.createDataFrame(
        [(0.05, 1), (0.1, 1), (0.55, 6), (0.95, 10)],
        "purchase_propensity_30d double, propensity_decile int",
    )
    assert_df_equality(
        with_deciles(cuts)(rows), expected, ignore_row_order=True, ignore_nullable=True
    )
