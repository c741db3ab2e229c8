"""The regularisation search's bounded sample, and the final fit on all training rows."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import PropensityConfig
from userprofile.models import propensity as prop
from userprofile.models.train_propensity import tuning_fractions, tuning_sample


def test_all_rows_are_searched_up_to_the_sample_size_and_a_share_beyond() -> None:
    assert tuning_fractions(600, 400, 1_000) == (1.0, 1.0)
    # One row more: each class in proportion, 1,000 rows expected.
    negatives, positives = tuning_fractions(601, 400, 1_000)
    assert negatives < 1
    assert positives < 1
    assert negatives == pytest.approx(positives)
    assert 601 * negatives + 400 * positives == pytest.approx(1_000)


def test_the_rarer_class_is_at_least_a_tenth_of_the_sample() -> None:
    # 1% buyers: 50 of 5,000 in proportion, raised to 500.
    negatives, positives = tuning_fractions(99_000, 1_000, 5_000)
    assert 1_000 * positives == pytest.approx(500)
    assert 99_000 * negatives == pytest.approx(4_500)
    # Fewer buyers than a tenth of the sample: all of them.
    negatives, positives = tuning_fractions(99_900, 100, 5_000)
    assert positives == 1.0
    assert 99_900 * negatives == pytest.approx(4_900)
    # Rare non-buyers are kept the same way.
    assert tuning_fractions(1_000, 99_000, 5_000) == pytest.approx((0.5, 4_500 / 99_000))


def labelled_users(spark: SparkSession, users: int, buyers: int) -> DataFrame:
    rows = [(f"user{i:05d}", 1 if i % (users // buyers) == 0 else 0) for i in range(users)]
    frame = spark.createDataFrame(rows, f"user_key string, {prop.LABEL} int")
    return prop.with_class_weight(frame, buyers / users)


@pytest.mark.parametrize("seed", range(6))
def test_the_search_sees_at_most_the_sample_size_and_both_classes(
    spark: SparkSession, seed: int
) -> None:
    """3,000 users, 150 buyers, a sample of 1,000: a draw expects 1,000 rows, so about half
    the seeds draw more at first and are cut back to the same users, fewer of them."""
    users = labelled_users(spark, 3_000, 150)
    cfg = PropensityConfig(tune_sample_size=1_000, seed=seed)
    drawn = tuning_sample(users, 2_850, 150, cfg)
    assert drawn is not None
    sample, rows = drawn
    counts = {r[prop.LABEL]: r["count"] for r in sample.groupBy(prop.LABEL).count().collect()}
    assert rows == counts[0] + counts[1] <= 1_000
    assert counts[1] >= 60  # 100 expected: a tenth of the sample
    # Each drawn user stands for the training users of its class; both classes weigh alike.
    sums = sample.groupBy(prop.LABEL).agg(
        F.sum(prop.SAMPLE_WEIGHT).alias("stands_for"), F.sum("class_weight").alias("weight")
    )
    by_class = {r[prop.LABEL]: r for r in sums.collect()}
    assert by_class[0]["stands_for"] == pytest.approx(2_850)
    assert by_class[1]["stands_for"] == pytest.approx(150)
    assert by_class[0]["weight"] == pytest.approx(by_class[1]["weight"])
    # The same users however the rows are laid out.
    again = tuning_sample(users.repartition(5, "class_weight"), 2_850, 150, cfg)
    assert again is not None
    keys = {r.user_key for r in sample.select("user_key").collect()}
    assert {r.user_key for r in again[0].select("user_key").collect()} == keys


def test_no_sample_while_the_training_rows_fit(spark: SparkSession) -> None:
    users = labelled_users(spark, 1_000, 100)
    assert tuning_sample(users, 900, 100, PropensityConfig(tune_sample_size=1_000)) is None


def test_the_chosen_pair_is_fitted_on_all_rows(spark: SparkSession) -> None:
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(2_000, 3))
    buys = (inputs @ [1.5, -1.0, 0.2] + rng.normal(size=2_000)) > 1.0
    rows = [
        (Vectors.dense(v), float(b), 0.7 if b else 0.3, 1.0)
        for v, b in zip(inputs.tolist(), buys, strict=True)
    ]
    columns = ["f", prop.LABEL, "class_weight", prop.SAMPLE_WEIGHT]
    prepared = spark.createDataFrame(rows, columns).coalesce(2).cache()
    sample = prepared.sample(fraction=0.25, seed=3).cache()
    cfg = PropensityConfig(reg_params=[0.001, 0.3], elastic_net_params=[0.0], max_iter=30)
    lr, tried = prop.tune(prepared, cfg, "f", sample)
    assert [(reg, mix) for reg, mix, _ in tried] == [(0.001, 0.0), (0.3, 0.0)]
    chosen = prop.classifier(cfg, "f").setRegParam(lr.getRegParam()).setElasticNetParam(0.0)
    on_all = chosen.fit(prepared).coefficients.toArray()
    on_sample = chosen.fit(sample).coefficients.toArray()
    assert lr.coefficients.toArray() == pytest.approx(on_all, rel=1e-9)
    assert lr.coefficients.toArray() != pytest.approx(on_sample, rel=1e-3)
    prepared.unpersist()
    sample.unpersist()
