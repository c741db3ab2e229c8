"""Purchase propensity: elastic-net logistic regression, tuned, calibrated, evaluated honestly.

The model is fitted with class weights (both classes count equally in the
loss) and its probabilities are corrected back to the real purchase rate
(``PriorCorrection``), so ``purchase_propensity_30d`` is a probability a
marketer can multiply by an audience size, not just a ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, VectorAssembler
from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userprofile.config import PropensityConfig
from userprofile.models.preparation import (
    ModelInput,
    PriorCorrection,
    Stage,
    as_is,
    capped_days,
    input_columns,
    log_count,
    preparation_stages,
    raw_input_stage,
)

PREFIX = "prop"
LABEL = "purchased"
# Of the rows the regularisation search samples: the training rows each one stands for.
SAMPLE_WEIGHT = "sample_weight"
SCORE = "purchase_propensity_30d"
PROPENSITY_INPUTS: tuple[ModelInput, ...] = (
    *(
        log_count(c)
        for c in (
            "events_7d",
            "events_30d",
            "events_90d",
            "sessions_30d",
            "sessions_90d",
            "active_days_7d",
            "active_days_30d",
            "active_days_90d",
            "product_views_30d",
            "searches_30d",
            "carts_30d",
            "orders_7d",
            "orders_30d",
            "orders_90d",
            "orders_total",
            "revenue_90d",
            "revenue_total",
        )
    ),
    capped_days("recency_days"),
    capped_days("days_since_last_purchase"),
    capped_days("tenure_days"),
    ModelInput("log_avg_item_price", "ln(avg_item_price)"),
    # Purchases per 30 days of the user's observed life: the daily rate, also for new users.
    ModelInput(
        "log_purchase_rate",
        "log1p(30 * coalesce(orders_total, 0) / greatest(coalesce(days_since_first_event, 7), 7))",
    ),
    as_is("orders_per_session"),
    as_is("search_share"),
    as_is("activity_trend"),
    as_is("mobile_share"),
    as_is("night_share"),
)
# Thresholds tried when choosing the one that maximises F1 on the training rows.
THRESHOLD_GRID = tuple(round(0.02 * i, 2) for i in range(1, 50))


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one scorer on one set of rows."""

    rows: int
    positives: int
    auc_roc: float
    auc_pr: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    brier: float


def input_names() -> list[str]:
    return input_columns(PREFIX, PROPENSITY_INPUTS)


def raw_input_names() -> list[str]:
    """Inputs as the first preparation stage computes them (before imputation)."""
    return [f"{PREFIX}_raw_{i.name}" for i in PROPENSITY_INPUTS]


def with_raw_inputs(features: DataFrame) -> DataFrame:
    return raw_input_stage(PREFIX, PROPENSITY_INPUTS).transform(features)


def preparation(
    segmentation: PipelineModel | None = None,
    inputs: tuple[ModelInput, ...] = PROPENSITY_INPUTS,
) -> Pipeline:
    """Preparation stages; with a segmentation model, its segment is appended (hybrid)."""
    stages = preparation_stages(PREFIX, inputs)
    if segmentation is None:
        return Pipeline(stages=stages)
    encode = OneHotEncoder(
        inputCol="segment_id", outputCol=f"{PREFIX}_segment", handleInvalid="keep"
    )
    assemble = VectorAssembler(
        inputCols=[f"{PREFIX}_scaled", f"{PREFIX}_segment"], outputCol=f"{PREFIX}_hybrid"
    )
    hybrid: list[Stage] = [segmentation, *stages, encode, assemble]
    return Pipeline(stages=hybrid)


def features_column(hybrid: bool) -> str:
    return f"{PREFIX}_hybrid" if hybrid else f"{PREFIX}_scaled"


def with_class_weight(labelled: DataFrame, positive_share: float) -> DataFrame:
    """Weight each class by the other's share so both count equally in the loss."""
    return labelled.withColumn(
        "class_weight",
        F.when(F.col(LABEL) > 0, F.lit(1 - positive_share)).otherwise(F.lit(positive_share)),
    )


def classifier(cfg: PropensityConfig, features_col: str) -> LogisticRegression:
    return LogisticRegression(
        featuresCol=features_col,
        labelCol=LABEL,
        weightCol="class_weight",
        maxIter=cfg.max_iter,
        probabilityCol=f"{PREFIX}_probability",
        rawPredictionCol=f"{PREFIX}_raw",
        predictionCol=f"{PREFIX}_prediction",
    )


def tune(
    prepared: DataFrame, cfg: PropensityConfig, features_col: str, sample: DataFrame | None = None
) -> tuple[LogisticRegressionModel, list[tuple[float, float, float]]]:
    """Pick regParam and elasticNetParam by TrainValidationSplit (AUC-PR), then fit on all rows.

    The search runs on ``sample`` when given (rows of ``prepared`` with ``SAMPLE_WEIGHT``,
    which weights the validation metric back to the class shares of all rows), else on all
    ``prepared`` rows. Returns the model fitted on all ``prepared`` rows with the best pair,
    and (regParam, elasticNetParam, validation AUC-PR) for every pair tried.
    """
    lr = classifier(cfg, features_col)
    grid = (
        ParamGridBuilder()
        .addGrid(lr.regParam, cfg.reg_params)
        .addGrid(lr.elasticNetParam, cfg.elastic_net_params)
        .build()
    )
    evaluator = BinaryClassificationEvaluator(
        labelCol=LABEL, rawPredictionCol=f"{PREFIX}_raw", metricName="areaUnderPR"
    )
    if sample is not None:
        evaluator.setWeightCol(SAMPLE_WEIGHT)
    search = TrainValidationSplit(
        estimator=lr,
        estimatorParamMaps=grid,
        evaluator=evaluator,
        trainRatio=0.75,
        seed=cfg.seed,
        parallelism=2,
    )
    # The search refits the best pair on the rows it searched: on all rows without a sample.
    fitted = search.fit(prepared if sample is None else sample)
    tried = [
        (float(p[lr.regParam]), float(p[lr.elasticNetParam]), float(m))
        for p, m in zip(grid, fitted.validationMetrics, strict=True)
    ]
    best = fitted.bestModel
    assert isinstance(best, LogisticRegressionModel)
    if sample is not None:
        chosen = {lr.regParam: best.getRegParam(), lr.elasticNetParam: best.getElasticNetParam()}
        best = lr.fit(prepared, chosen)
    return best, tried


def propensity_model(
    prep: PipelineModel, lr: LogisticRegressionModel, positive_share: float
) -> PipelineModel:
    calibrate = PriorCorrection(
        inputCol=f"{PREFIX}_raw",
        outputCol=SCORE,
        logOddsOffset=PriorCorrection.offset_for(positive_share),
    )
    return PipelineModel(stages=[*prep.stages, lr, calibrate])


def score_propensity(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Features + ``purchase_propensity_30d``."""
    return model.transform(features).select(*features.columns, SCORE)


def baseline_score() -> Column:
    """The rule a CRM team would use without a model: frequency, discounted by recency."""
    days = F.least(F.coalesce(F.col("days_since_last_purchase"), F.lit(365)), F.lit(365))
    return F.log1p(F.col("orders_90d")) - days / F.lit(365.0) + F.log1p("sessions_30d") / 100


def choose_threshold(scored: DataFrame, score_col: str) -> float:
    """The grid threshold with the best F1 (one pass over ``scored``)."""
    y = F.col(LABEL) > 0
    sums = []
    for i, t in enumerate(THRESHOLD_GRID):
        predicted = F.col(score_col) >= F.lit(t)
        sums.append(F.sum((predicted & y).cast("long")).alias(f"tp{i}"))
        sums.append(F.sum(predicted.cast("long")).alias(f"pp{i}"))
    row = scored.agg(F.sum(y.cast("long")).alias("p"), *sums).first()
    assert row is not None
    positives = row["p"] or 0

    def f1(i: int) -> float:
        tp, pp = row[f"tp{i}"] or 0, row[f"pp{i}"] or 0
        return 2 * tp / (pp + positives) if pp + positives else 0.0

    return THRESHOLD_GRID[max(range(len(THRESHOLD_GRID)), key=f1)]


def evaluate(scored: DataFrame, score_col: str, threshold: float) -> Evaluation:
    """Ranking metrics and metrics at ``threshold``, computed in Spark."""
    evaluator = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol=score_col)
    auc_roc = evaluator.evaluate(scored, {evaluator.metricName: "areaUnderROC"})
    auc_pr = evaluator.evaluate(scored, {evaluator.metricName: "areaUnderPR"})
    y = F.col(LABEL) > 0
    predicted = F.col(score_col) >= F.lit(threshold)
    row = scored.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(y.cast("long")).alias("p"),
        F.sum((predicted & y).cast("long")).alias("tp"),
        F.sum(predicted.cast("long")).alias("pp"),
        F.sum((predicted == y).cast("long")).alias("correct"),
        F.avg(F.pow(F.col(score_col) - F.col(LABEL), 2)).alias("brier"),
    ).first()
    assert row is not None
    n, p, tp, pp = row["n"], row["p"] or 0, row["tp"] or 0, row["pp"] or 0
    precision = tp / pp if pp else 0.0
    recall = tp / p if p else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(
        rows=n,
        positives=p,
        auc_roc=float(auc_roc),
        auc_pr=float(auc_pr),
        accuracy=(row["correct"] or 0) / n if n else 0.0,
        precision=precision,
        recall=recall,
        f1=f1,
        brier=float(row["brier"] or 0.0),
    )


def lift_by_decile(scored: DataFrame, score_col: str) -> list[tuple[int, int, int, float]]:
    """(decile, users, purchasers, lift) with decile 10 the highest scores; 10 rows."""
    cuts = scored.approxQuantile(score_col, [i / 10 for i in range(1, 10)], 0.001)
    decile: Column = F.lit(1)
    for cut in cuts:
        decile = decile + (F.col(score_col) > F.lit(cut)).cast("int")
    rows = (
        scored.groupBy(decile.alias("decile"))
        .agg(F.count(F.lit(1)).alias("users"), F.sum(F.col(LABEL).cast("long")).alias("buyers"))
        .collect()
    )
    total_users = sum(r["users"] for r in rows)
    base_rate = sum(r["buyers"] for r in rows) / total_users if total_users else 0.0
    result = []
    for r in sorted(rows, key=lambda r: -r["decile"]):
        rate = r["buyers"] / r["users"] if r["users"] else 0.0
        result.append(
            (
                int(r["decile"]),
                int(r["users"]),
                int(r["buyers"]),
                rate / base_rate if base_rate else 0.0,
            )
        )
    return result


def roc_points(scored: DataFrame, score_col: str, bins: int = 100) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at each of ``bins`` probability cuts.

    One aggregation: positives and negatives per equal-width score bin (at most
    ``bins`` rows reach the driver), accumulated from the highest bin down.
    """
    binned = F.least(F.floor(F.col(score_col) * bins), F.lit(bins - 1)).cast("int")
    rows = (
        scored.groupBy(binned.alias("bin"))
        .agg(
            F.sum((F.col(LABEL) > 0).cast("long")).alias("pos"),
            F.sum((F.col(LABEL) <= 0).cast("long")).alias("neg"),
        )
        .collect()
    )
    positives = sum(r["pos"] for r in rows) or 1
    negatives = sum(r["neg"] for r in rows) or 1
    points, tp, fp = [(0.0, 0.0)], 0, 0
    for r in sorted(rows, key=lambda r: -r["bin"]):
        tp, fp = tp + r["pos"], fp + r["neg"]
        points.append((fp / negatives, tp / positives))
    return points


def coefficients(lr: LogisticRegressionModel, names: list[str]) -> dict[str, float]:
    """Coefficient per input (standardised units: comparable across inputs)."""
    values = lr.coefficients.toArray()
    labels = [*names, *[f"segment_{i}" for i in range(len(values) - len(names))]]
    return {n: float(v) for n, v in zip(labels, values, strict=True)}


def single_input_aucs(prepared: DataFrame, names: list[str], bins: int = 1000) -> dict[str, float]:
    """AUC-ROC of each input alone against the label, folded to >= 0.5, in two passes.

    Values are binned (equal width between each input's min and max); ties
    within a bin count half, so the AUC is exact up to the binning.
    """
    bounds = prepared.agg(*[F.min(n) for n in names], *[F.max(n) for n in names]).first()
    assert bounds is not None
    cells = []
    for i, name in enumerate(names):
        low, high = bounds[i], bounds[len(names) + i]
        width = (high - low) / bins if high is not None and high > low else 1.0
        binned = F.floor((F.col(name) - F.lit(low or 0.0)) / F.lit(width)).cast("int")
        cells.append(F.struct(F.lit(name).alias("input"), binned.alias("bin")))
    counts = (
        prepared.select(F.col(LABEL), F.explode(F.array(*cells)).alias("cell"))
        .groupBy("cell.input", "cell.bin")
        .agg(
            F.sum((F.col(LABEL) > 0).cast("long")).alias("pos"),
            F.sum((F.col(LABEL) <= 0).cast("long")).alias("neg"),
        )
        .collect()  # at most inputs x bins rows
    )
    by_input: dict[str, list[tuple[int, int, int]]] = {n: [] for n in names}
    for r in counts:
        by_input[r["input"]].append((r["bin"] if r["bin"] is not None else -1, r["pos"], r["neg"]))
    return {n: _binned_auc(cells_) for n, cells_ in by_input.items()}


def _binned_auc(cells: list[tuple[int, int, int]]) -> float:
    positives = sum(p for _, p, _ in cells)
    negatives = sum(n for _, _, n in cells)
    if not positives or not negatives:
        return 0.5
    below = 0  # negatives in lower bins
    wins = 0.0
    for _, pos, neg in sorted(cells):
        wins += pos * (below + neg / 2)
        below += neg
    auc = wins / (positives * negatives)
    return max(auc, 1 - auc)
