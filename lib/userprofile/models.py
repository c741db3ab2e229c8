"""MLlib pipelines: KMeans segmentation and logistic-regression purchase propensity.

Each model is one ``Pipeline`` (input preparation in SQL, VectorAssembler,
StandardScaler, estimator), saved and loaded as one ``PipelineModel`` so
scoring applies exactly the preparation used in training.
"""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import SQLTransformer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.config import ModelConfig

# Heavy-tailed counts enter the models as log1p(count).
LOG_INPUTS = (
    "events_30d",
    "events_90d",
    "sessions_30d",
    "sessions_90d",
    "active_days_30d",
    "active_days_90d",
    "product_views_30d",
    "searches_30d",
    "carts_30d",
    "orders_30d",
    "orders_90d",
    "orders_total",
    "revenue_90d",
    "revenue_total",
)
# Day counts, capped: "never" counts as a year.
DAY_INPUTS = ("recency_days", "days_since_last_purchase", "tenure_days")
SHARE_INPUTS = ("mobile_share", "night_share")
DAY_CAP = 365


def model_inputs() -> list[str]:
    """Names of the prepared model inputs, in vector order."""
    return [f"x_{c}" for c in (*LOG_INPUTS, *DAY_INPUTS, *SHARE_INPUTS)]


def _prepare_inputs() -> SQLTransformer:
    logs = [f"log1p(coalesce(`{c}`, 0)) AS x_{c}" for c in LOG_INPUTS]
    days = [f"least(coalesce(`{c}`, {DAY_CAP}), {DAY_CAP}) AS x_{c}" for c in DAY_INPUTS]
    shares = [f"coalesce(`{c}`, 0.0) AS x_{c}" for c in SHARE_INPUTS]
    return SQLTransformer(statement=f"SELECT *, {', '.join(logs + days + shares)} FROM __THIS__")


def _scaled_vector() -> list[VectorAssembler | StandardScaler]:
    return [
        VectorAssembler(inputCols=model_inputs(), outputCol="model_input"),
        StandardScaler(
            inputCol="model_input", outputCol="scaled_input", withMean=True, withStd=True
        ),
    ]


def segmentation_pipeline(cfg: ModelConfig) -> Pipeline:
    kmeans = KMeans(
        k=cfg.k, seed=cfg.seed, featuresCol="scaled_input", predictionCol="segment_id", maxIter=40
    )
    return Pipeline(stages=[_prepare_inputs(), *_scaled_vector(), kmeans])


def propensity_pipeline(cfg: ModelConfig) -> Pipeline:
    classifier = LogisticRegression(
        featuresCol="scaled_input",
        labelCol="purchased",
        weightCol="class_weight",
        regParam=cfg.reg_param,
        elasticNetParam=cfg.elastic_net_param,
        maxIter=cfg.max_iter,
        probabilityCol="propensity_vector",
        rawPredictionCol="raw_prediction",
        predictionCol="predicted_purchase",
    )
    return Pipeline(stages=[_prepare_inputs(), *_scaled_vector(), classifier])


def split_holdout(
    labelled: DataFrame, holdout_share: float, seed: int
) -> tuple[DataFrame, DataFrame]:
    """Deterministic split by user key (same users held out on every run)."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), "user_key"), F.lit(10_000)) / 10_000.0
    return labelled.where(bucket >= holdout_share), labelled.where(bucket < holdout_share)


def with_class_weight(labelled: DataFrame, positive_share: float) -> DataFrame:
    """Weight each class by the other's share so both count equally in the loss."""
    share = min(max(positive_share, 1e-6), 1 - 1e-6)
    return labelled.withColumn(
        "class_weight", F.when(F.col("purchased") > 0, F.lit(1 - share)).otherwise(F.lit(share))
    )


def evaluate_propensity(model: PipelineModel, holdout: DataFrame) -> tuple[float, float]:
    """AUC-ROC and AUC-PR on held-out rows (computed in Spark)."""
    scored = model.transform(holdout)
    evaluator = BinaryClassificationEvaluator(
        labelCol="purchased", rawPredictionCol="raw_prediction"
    )
    auc_roc = evaluator.evaluate(scored, {evaluator.metricName: "areaUnderROC"})
    auc_pr = evaluator.evaluate(scored, {evaluator.metricName: "areaUnderPR"})
    return float(auc_roc), float(auc_pr)


def score_segments(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Features + ``segment_id`` (int)."""
    scored = model.transform(features)
    return scored.select(*features.columns, F.col("segment_id").cast("int").alias("segment_id"))


def score_propensity(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Features + ``purchase_propensity_30d`` (probability of the positive class)."""
    scored = model.transform(features)
    probability = vector_to_array(F.col("propensity_vector"))[1]
    return scored.select(*features.columns, probability.alias("purchase_propensity_30d"))
