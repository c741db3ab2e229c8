"""Customer value: RFM scores by quintiles of purchasers, and RFM segments from rules."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import RfmConfig
from userprofile.profile.value import rfm_cuts, with_rfm


def test_rfm_scores_by_quintiles_and_segments(spark: SparkSession) -> None:
    # Ten purchasers: i days since the last purchase, 11 - i purchases, 10 x (11 - i) revenue.
    rows = [(f"u{i}", i, 11 - i, 10.0 * (11 - i)) for i in range(1, 11)]
    rows.append(("never", None, 0, 0.0))
    features = spark.createDataFrame(
        rows,
        "user_key string, days_since_last_purchase int, orders_total long, revenue_total double",
    )
    cuts = rfm_cuts(features)
    assert cuts.cuts["orders_total"] == [2, 4, 6, 8]  # from purchasers only
    expected = spark.createDataFrame(
        [
            ("u1", 5, 5, 5, "champions"),
            ("u3", 4, 4, 4, "champions"),
            ("u5", 3, 3, 3, "need attention"),
            ("u7", 2, 2, 2, "hibernating"),
            ("u10", 1, 1, 1, "hibernating"),
            ("never", None, None, None, None),
        ],
        "user_key string, r_score int, f_score int, m_score int, rfm_segment string",
    )
    scored = (
        features.transform(with_rfm(cuts, RfmConfig().segments))
        .where(F.col("user_key").isin("u1", "u3", "u5", "u7", "u10", "never"))
        .select(*expected.columns)
    )
    assert_df_equality(scored, expected, ignore_row_order=True, ignore_nullable=True)
