"""Segment names: a centre's place in the population's quantiles, worded, unique without numbers."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.models.naming import (
    CENTRE_PREFIX,
    NAMING_FEATURES,
    Draft,
    centre_medians,
    population_quantiles,
    quantile_position,
    traits,
    unique_names,
)
from userprofile.models.naming import draft as naming_draft

# Percentiles 0..100 of a population spread evenly over 0..100: a value v sits at q = v / 100.
EVEN = tuple(float(i) for i in range(101))
QUANTILES = dict.fromkeys(NAMING_FEATURES, EVEN)


def draft(key: int, centre: dict[str, float], head: str | None = None) -> Draft:
    return naming_draft(key, head, centre, QUANTILES, recent_days=30)


def words(name: str) -> list[str]:
    return name.split(", ")


def test_a_value_between_percentiles_is_interpolated() -> None:
    assert quantile_position(37.5, EVEN) == pytest.approx(0.375)
    assert quantile_position(-1.0, EVEN) == 0.0
    assert quantile_position(250.0, EVEN) == 1.0


def test_a_value_shared_by_many_users_sits_in_the_middle_of_their_run() -> None:
    # 60% of users never searched: percentiles 0..59 are 0.
    mostly_zero = (0.0,) * 60 + tuple(float(i) for i in range(1, 42))
    assert quantile_position(0.0, mostly_zero) == pytest.approx(59 / 200)
    # A feature the same for everyone (no device in invoice data) describes nobody.
    assert quantile_position(0.0, (0.0,) * 101) == 0.5
    assert traits({"mobile_share": 0.0}, {"mobile_share": (0.0,) * 101}, 30) == []


def test_population_percentiles_are_computed_in_spark(spark: SparkSession) -> None:
    users = spark.range(101).select(
        "id",
        *[F.col("id").cast("double").alias(f) for f in NAMING_FEATURES if f != "search_share"],
        F.lit(None).cast("double").alias("search_share"),
    )
    # Users never seen (here ids below 50) have no recency: left out, not counted as lapsed.
    seen_or_not = users.withColumn("recency_days", F.when(F.col("id") >= 50, F.col("id")))
    quantiles = population_quantiles(seen_or_not)
    assert quantiles["orders_90d"] == EVEN
    assert quantiles["search_share"] == ()  # no values: describes no segment
    recency = quantiles["recency_days"]
    assert (recency[0], recency[50], recency[100]) == (50.0, 75.0, 100.0)


def test_a_centre_is_null_where_most_of_its_users_have_no_value(spark: SparkSession) -> None:
    rows = [(0, 1.0, 10), (0, None, 20), (0, None, 30), (1, 0.5, 40), (1, -0.5, 50), (1, 0.0, 60)]
    users = spark.createDataFrame(rows, "cluster int, activity_trend double, recency_days int")
    for f in NAMING_FEATURES:
        if f not in users.columns:
            users = users.withColumn(f, F.lit(None).cast("double"))
    centres = users.groupBy("cluster").agg(*centre_medians())
    expected = spark.createDataFrame(
        [(0, None, 20.0), (1, 0.0, 50.0)], "cluster int, trend double, recency double"
    )
    assert_df_equality(
        centres.select(
            "cluster",
            F.col(f"{CENTRE_PREFIX}activity_trend").alias("trend"),
            F.col(f"{CENTRE_PREFIX}recency_days").alias("recency"),
        ),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


@pytest.mark.parametrize(
    ("orders", "word"),
    [(5.0, "very few orders"), (30.0, "few orders"), (70.0, "frequent"), (95.0, "very frequent")],
)
def test_the_word_follows_the_side_of_the_median_and_its_distance(orders: float, word: str) -> None:
    assert [t.word for t in traits({"orders_90d": orders}, QUANTILES, 30)] == [word]


def test_a_centre_at_zero_below_the_median_has_none() -> None:
    mostly_zero = (0.0,) * 60 + tuple(float(i) for i in range(1, 42))
    found = traits({"orders_90d": 0.0}, {"orders_90d": mostly_zero}, 30)
    assert [t.word for t in found] == ["no orders"]


def test_the_recency_word_agrees_with_the_centre_quantile_and_its_days() -> None:
    centre_at = {"recency_days": 10.0, "orders_90d": 40.0}
    assert [t.word for t in traits(centre_at, QUANTILES, 30)] == ["very recent", "few orders"]
    assert traits({"recency_days": 90.0}, QUANTILES, 30)[0].word == "long lapsed"
    # Low in a population that is mostly away, but 45 days is not recent: no recency word.
    away = {"recency_days": tuple(40.0 + i for i in range(101))}
    assert traits({"recency_days": 45.0}, away, recent_days=30) == []
    # High in a population of daily visitors, but 20 days is not lapsed.
    daily = {"recency_days": tuple(i / 10 for i in range(101))}
    assert traits({"recency_days": 20.0}, daily, recent_days=30) == []


def test_equally_distinctive_features_go_by_distance_from_the_median() -> None:
    # Both near the 92nd percentile; spend is far beyond the others, the item price is not.
    quantiles = {
        "revenue_90d": (0.0,) * 50 + tuple(float(i) for i in range(1, 51)),
        "avg_item_price": EVEN,
    }
    found = traits({"revenue_90d": 42.0, "avg_item_price": 92.0}, quantiles, 30)
    assert [t.word for t in found] == ["very high spend", "luxury items"]
    reordered = {**quantiles, "revenue_90d": EVEN}
    found = traits({"revenue_90d": 92.0, "avg_item_price": 92.0}, reordered, 30)
    assert [t.word for t in found] == ["very high spend", "luxury items"]  # a tie: WORDS order


def test_a_name_is_the_most_distinctive_features_at_the_extremes() -> None:
    centre = {"recency_days": 3.0, "orders_90d": 85.0, "revenue_90d": 78.0, "tenure_days": 60.0}
    names = unique_names([draft(0, centre)], taken=[], name_words=3)
    assert words(names[0]) == ["very recent", "frequent", "high spend"]  # tenure: in the middle
    assert unique_names([draft(0, centre)], taken=[], name_words=1) == {0: "very recent"}
    assert unique_names([draft(0, {"orders_90d": 45.0})], [], 3) == {0: "few orders"}
    assert unique_names([draft(0, {"orders_90d": 50.0})], [], 3) == {0: "typical"}


def test_two_centres_identical_on_the_most_distinctive_feature_get_different_names() -> None:
    big = {"recency_days": 2.0, "orders_90d": 60.0, "revenue_90d": 58.0, "tenure_days": 45.0}
    small = {"recency_days": 2.0, "orders_90d": 60.0, "revenue_90d": 42.0, "tenure_days": 45.0}
    names = unique_names([draft(0, big), draft(1, small)], taken=[], name_words=1)
    # Same first two words; the spend, below the naming threshold, tells them apart.
    assert names == {0: "very recent, high spend", 1: "very recent, low spend"}


def test_segments_alike_in_every_word_are_compared() -> None:
    nearer = {"recency_days": 12.0, "tenure_days": 80.0}
    farther = {"recency_days": 20.0, "tenure_days": 82.0}
    names = unique_names([draft(0, nearer), draft(1, farther)], taken=[], name_words=3)
    # The same words (in their own order of distinctiveness), then the degree.
    assert names == {
        0: "recent, long-standing, more recent",
        1: "long-standing, recent, less recent",
    }


def test_an_override_names_its_segment_and_shared_overrides_are_described() -> None:
    lapsed_cheap = {"recency_days": 90.0, "avg_item_price": 10.0}
    lapsed_dear = {"recency_days": 90.0, "avg_item_price": 95.0}
    frequent = {"recency_days": 5.0, "orders_90d": 95.0}
    drafts = [
        draft(0, lapsed_cheap, head="dormant"),
        draft(1, lapsed_dear, head="dormant"),
        draft(2, frequent, head="vip"),
    ]
    names = unique_names(drafts, taken=[], name_words=1)
    # Each dormant one by its own most distinctive word (a tie on q goes to WORDS order).
    assert names == {0: "dormant (long lapsed)", 1: "dormant (luxury items)", 2: "vip"}


def test_a_new_name_never_takes_a_kept_segments_name() -> None:
    centre = {"recency_days": 3.0, "orders_90d": 85.0, "revenue_90d": 60.0}
    names = unique_names([draft(5, centre)], taken=["frequent, very recent"], name_words=2)
    assert names == {5: "very recent, frequent, high spend"}
