"""Model preparation stages: the prior correction undoes class weighting, and persists."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.models.preparation import PriorCorrection
from userprofile.models.propensity import LABEL


def test_prior_correction_restores_the_purchase_rate(spark: SparkSession, tmp_path: Path) -> None:
    """A class-weighted model's mean probability is ~0.5; corrected, it matches the real rate."""
    draw = random.Random(5)
    # P(y = 1 | x) = 0.02 + 0.02 x for x in 0..9: overlapping classes, about 11% positive.
    rows = [(float(i % 10), float(draw.random() < 0.02 + 0.02 * (i % 10))) for i in range(5000)]
    share = sum(y for _, y in rows) / len(rows)
    data = spark.createDataFrame(rows, f"x double, {LABEL} double").withColumn(
        "class_weight", F.when(F.col(LABEL) > 0, 1 - share).otherwise(share)
    )
    lr = LogisticRegression(featuresCol="v", labelCol=LABEL, weightCol="class_weight")
    correction = PriorCorrection(
        inputCol="rawPrediction", outputCol="p", logOddsOffset=PriorCorrection.offset_for(share)
    )
    fitted = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="v"), lr]).fit(data)
    model = PipelineModel(stages=[*fitted.stages, correction])
    model.write().overwrite().save(str(tmp_path / "m"))
    loaded = PipelineModel.load(str(tmp_path / "m"))
    weighted = fitted.transform(data).agg(F.avg(vector_to_array("probability")[1])).first()
    assert weighted is not None
    assert weighted[0] > 0.3  # what the weighting alone would report
    mean_p = loaded.transform(data).agg(F.avg("p")).first()
    assert mean_p is not None
    assert mean_p[0] == pytest.approx(share, abs=0.02)
