"""Input preparation: an input without any value (dates-only sources) does not stop a fit."""

from __future__ import annotations

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.ml import Pipeline
from pyspark.sql import SparkSession

from userprofile.models.preparation import as_is, preparation_stages, with_values

INPUTS = (as_is("night_share"), as_is("mobile_share"))


def test_an_input_without_values_is_taken_as_zero(spark: SparkSession) -> None:
    # Every user's night_share is null: all their sources have dates only.
    snapshot = spark.createDataFrame(
        [(None, 0.5), (None, 1.0), (None, None)], "night_share double, mobile_share double"
    )
    with pytest.raises(Py4JJavaError, match="surrogate cannot be computed"):
        Pipeline(stages=preparation_stages("x", INPUTS)).fit(snapshot)
    inputs = with_values(snapshot, INPUTS)
    assert [i.sql for i in inputs] == [
        "coalesce(CAST(`night_share` AS DOUBLE), 0D)",
        "CAST(`mobile_share` AS DOUBLE)",  # one value is enough for the median
    ]
    prepared = Pipeline(stages=preparation_stages("x", inputs)).fit(snapshot).transform(snapshot)
    assert [tuple(r) for r in prepared.select("x_night_share", "x_mobile_share").collect()] == [
        (0.0, 0.5),
        (0.0, 1.0),
        (0.0, 0.5),  # the median (the lower of two values, as Spark takes it), as before
    ]
