"""Next-best categories: the user's own affinity blended with what the user's segment likes."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

# Categories a segment contributes as candidates for each of its users.
SEGMENT_CANDIDATES = 5


def next_best_categories(top_n: int, user_weight: float) -> Callable[[DataFrame], DataFrame]:
    """Add ``next_best_categories``: the ``top_n`` categories by
    ``user_weight x user's share + (1 - user_weight) x segment's share``.

    A segment's share of a category is the mean of its users' affinity shares
    (users without activity count as 0), so a user with no history gets the
    segment's favourites, and a user's strong habits still come first.
    """

    def transform(scored: DataFrame) -> DataFrame:
        own = scored.select(
            "user_key", "segment_id", F.explode("category_affinity").alias("category", "share")
        )
        sizes = scored.groupBy("segment_id").agg(F.count(F.lit(1)).alias("segment_users"))
        popular = (
            own.groupBy("segment_id", "category")
            .agg(F.sum("share").alias("share_sum"))
            .join(sizes, "segment_id")
            .select(
                "segment_id",
                "category",
                (F.col("share_sum") / F.col("segment_users")).alias("popularity"),
            )
        )
        rank = Window.partitionBy("segment_id").orderBy(F.desc("popularity"), "category")
        top = popular.withColumn("r", F.row_number().over(rank)).where(
            F.col("r") <= SEGMENT_CANDIDATES
        )
        candidates = (
            scored.select("user_key", "segment_id")
            .join(top.select("segment_id", "category"), "segment_id")
            .unionByName(own.select("user_key", "segment_id", "category"))
            .distinct()
            .join(own.select("user_key", "category", "share"), ["user_key", "category"], "left")
            .join(
                popular.select("segment_id", "category", "popularity"),
                ["segment_id", "category"],
                "left",
            )
        )
        score = user_weight * F.coalesce("share", F.lit(0.0)) + (1 - user_weight) * F.coalesce(
            "popularity", F.lit(0.0)
        )
        ranked = candidates.groupBy("user_key").agg(
            F.sort_array(F.collect_list(F.struct((-score).alias("neg_score"), "category"))).alias(
                "ranked"
            )
        )
        best = ranked.select(
            "user_key",
            F.transform(F.slice("ranked", 1, top_n), lambda c: c["category"]).alias(
                "next_best_categories"
            ),
        )
        return scored.join(best, "user_key", "left").withColumn(
            "next_best_categories",
            F.coalesce("next_best_categories", F.array().cast("array<string>")),
        )

    return transform
