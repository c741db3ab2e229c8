"""Propensity evaluation helpers: ROC points and single-input AUCs agree with MLlib."""

from __future__ import annotations

import itertools

import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.models.propensity import LABEL, roc_points, single_input_aucs


def test_roc_points_by_hand_and_against_mllib(spark: SparkSession) -> None:
    rows = [(0.95, 1.0), (0.85, 0.0), (0.75, 1.0), (0.15, 0.0)]
    scored = spark.createDataFrame(rows, f"score double, {LABEL} double")
    # Cuts from the top: 0.95 (tp 1), 0.85 (fp 1), 0.75 (tp 2), 0.15 (fp 2).
    assert roc_points(scored, "score", bins=10) == [
        (0.0, 0.0),
        (0.0, 0.5),
        (0.5, 0.5),
        (0.5, 1.0),
        (1.0, 1.0),
    ]
    many = spark.createDataFrame(
        [((i * 37 % 101) / 101, float((i * 37 % 101) / 101 > (i % 7) / 7)) for i in range(700)],
        f"score double, {LABEL} double",
    )
    points = roc_points(many, "score", bins=1000)
    trapezoid = sum((x2 - x1) * (y1 + y2) / 2 for (x1, y1), (x2, y2) in itertools.pairwise(points))
    mllib = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol="score").evaluate(many)
    assert trapezoid == pytest.approx(mllib, abs=0.01)


def test_single_input_aucs_match_mllib(spark: SparkSession) -> None:
    rows = [
        ((i * 7919) % 1000 / 10.0, 1.0 if (i * 7919) % 1000 > 600 + (i % 7) * 40 else 0.0)
        for i in range(3000)
    ]
    data = spark.createDataFrame(rows, f"x double, {LABEL} double").withColumn("noise", F.rand(3))
    exact = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol="x").evaluate(data)
    aucs = single_input_aucs(data, ["x", "noise"])
    assert aucs["x"] == pytest.approx(exact, abs=0.005)
    assert aucs["noise"] < 0.6
