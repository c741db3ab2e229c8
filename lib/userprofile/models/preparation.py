"""What the MLlib models share: input preparation as pipeline stages, and a calibration stage.

A model's inputs are named SQL expressions over ``user_features`` columns
(log transforms of heavy-tailed counts, caps for "never"). They become the
first stages of the model's ``Pipeline``: SQLTransformer -> Imputer (median)
-> VectorAssembler -> StandardScaler, so a saved ``PipelineModel`` applies
exactly the preparation it was trained with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator, Transformer
from pyspark.ml.feature import Imputer, SQLTransformer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# "Never" (no event, no purchase) counts as this many days.
DAY_CAP = 365
# Iterative fits (KMeans, L-BFGS) run one Spark job per iteration, and each task of it
# costs a fixed overhead: training data gets about this many rows per partition.
ROWS_PER_PARTITION = 20_000


@dataclass(frozen=True)
class ModelInput:
    """One model input: a name and a Spark SQL expression over feature columns."""

    name: str
    sql: str


def log_count(column: str) -> ModelInput:
    # Net revenue can be negative (returns exceed purchases): it enters as 0.
    return ModelInput(f"log_{column}", f"log1p(greatest(coalesce(`{column}`, 0), 0))")


def capped_days(column: str) -> ModelInput:
    return ModelInput(f"log_{column}", f"log1p(least(coalesce(`{column}`, {DAY_CAP}), {DAY_CAP}))")


def as_is(column: str) -> ModelInput:
    """A ratio or share; null (no denominator) is imputed with the training median."""
    return ModelInput(column, f"CAST(`{column}` AS DOUBLE)")


def with_values(df: DataFrame, inputs: tuple[ModelInput, ...]) -> tuple[ModelInput, ...]:
    """``inputs``, where one has no value at all in ``df`` taken as 0 instead.

    The median imputer cannot fill a column without values (``night_share`` when every
    source has dates only, say); a constant input carries no weight in the model.
    """
    counts = df.select(*[F.count(F.expr(i.sql)).alias(f"n{k}") for k, i in enumerate(inputs)])
    row = counts.first()  # one row of counts
    return tuple(
        i if row is not None and row[k] else ModelInput(i.name, f"coalesce({i.sql}, 0D)")
        for k, i in enumerate(inputs)
    )


def input_columns(prefix: str, inputs: tuple[ModelInput, ...]) -> list[str]:
    return [f"{prefix}_{i.name}" for i in inputs]


Stage = Estimator[Any] | Transformer


def right_sized(df: DataFrame, rows: int) -> DataFrame:
    """``df`` with one partition per ROWS_PER_PARTITION rows, at most one per shuffle partition.

    The shuffle partitions stand for the cluster's parallelism: a Spark Connect client
    cannot ask the SparkContext for its cores.
    """
    parallelism = int(df.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1)
    return df.coalesce(max(1, min(parallelism, math.ceil(rows / ROWS_PER_PARTITION))))


def raw_input_stage(prefix: str, inputs: tuple[ModelInput, ...]) -> SQLTransformer:
    """``<prefix>_raw_<name>`` for each input: the expressions, nulls not yet imputed."""
    raw = [f"{i.sql} AS {prefix}_raw_{i.name}" for i in inputs]
    return SQLTransformer(statement=f"SELECT *, {', '.join(raw)} FROM __THIS__")


def preparation_stages(prefix: str, inputs: tuple[ModelInput, ...]) -> list[Stage]:
    """Stages producing ``<prefix>_scaled`` (standardised inputs) from feature columns."""
    raw_columns = [f"{prefix}_raw_{i.name}" for i in inputs]
    return [
        raw_input_stage(prefix, inputs),
        Imputer(inputCols=raw_columns, outputCols=input_columns(prefix, inputs), strategy="median"),
        VectorAssembler(inputCols=input_columns(prefix, inputs), outputCol=f"{prefix}_vector"),
        StandardScaler(
            inputCol=f"{prefix}_vector", outputCol=f"{prefix}_scaled", withMean=True, withStd=True
        ),
    ]


class PriorCorrection(
    Transformer,
    HasInputCol,
    HasOutputCol,
    DefaultParamsReadable["PriorCorrection"],
    DefaultParamsWritable,
):
    """Probability of class 1 from a class-weighted classifier's margin, corrected back to
    the true class prior: weighting both classes equally shifts the log-odds by
    ``log(share / (1 - share))`` of the positive class (King and Zeng, 2001).
    """

    # MLlib's param names are camelCase; keyword_only needs the same names as arguments.
    logOddsOffset: Param[float] = Param(  # noqa: N815
        Params._dummy(),
        "logOddsOffset",
        "added to the margin before the logistic function",
        typeConverter=TypeConverters.toFloat,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,  # noqa: N803
        outputCol: str | None = None,  # noqa: N803
        logOddsOffset: float = 0.0,  # noqa: N803
    ) -> None:
        super().__init__()
        self._setDefault(logOddsOffset=0.0)
        self._set(**self._input_kwargs)  # type: ignore[attr-defined]  # set by keyword_only

    @staticmethod
    def offset_for(positive_share: float) -> float:
        share = min(max(positive_share, 1e-6), 1 - 1e-6)
        return math.log(share / (1 - share))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        margin = vector_to_array(F.col(self.getInputCol()))[1]
        offset = F.lit(self.getOrDefault(self.logOddsOffset))
        probability = F.lit(1.0) / (F.lit(1.0) + F.exp(-(margin + offset)))
        return dataset.withColumn(self.getOutputCol(), probability)
