"""Next best categories: the user's own affinity blended with their segment's."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.profile.recommend import next_best_categories


def test_next_best_categories_blend_user_and_segment(spark: SparkSession) -> None:
    rows = [
        ("a", 0, {"books": 0.9, "toys": 0.1}),
        ("b", 0, {"toys": 1.0}),
        ("c", 0, {"toys": 0.8, "games": 0.2}),
        ("new", 0, None),  # no history: the segment's favourites
        ("d", 1, {"garden": 1.0}),
    ]
    scored = spark.createDataFrame(
        rows, "user_key string, segment_id int, category_affinity map<string, double>"
    )
    # Segment 0 shares (mean over its 4 users): toys 0.475, books 0.225, games 0.05.
    expected = spark.createDataFrame(
        [
            ("a", ["books", "toys"]),  # 0.7*0.9 + 0.3*0.225 beats toys' 0.07 + 0.1425
            ("b", ["toys", "books"]),
            ("new", ["toys", "books"]),
            ("d", ["garden"]),
        ],
        "user_key string, next_best_categories array<string>",
    )
    picks = (
        scored.transform(next_best_categories(2, 0.7))
        .where(F.col("user_key").isin("a", "b", "new", "d"))
        .select(*expected.columns)
    )
    assert_df_equality(picks, expected, ignore_row_order=True, ignore_nullable=True)
