"""Predicted customer value: BG/NBD for future purchases, Gamma-Gamma for spend per purchase.

Fitted at scale: Spark summarises each purchaser as (x, t_x, T) - repeat purchase
days, days from the first to the last purchase day, days since the first - and
groups identical triples, so the likelihood is maximised on the driver over the
distinct triples weighted by their counts: a million users cost no more than
the triples they share. Predictions are computed per distinct triple and
joined back, because the BG/NBD expectation needs the Gaussian hypergeometric
function, which Spark SQL does not have.

References: Fader, Hardie and Lee, "Counting Your Customers the Easy Way"
(2005) for BG/NBD; Fader, Hardie and Lee, "RFM and CLV" (2005) for Gamma-Gamma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

Array = NDArray[np.float64]
# Mean spend is grouped into relative buckets of this width (0.5%) for the Gamma-Gamma fit.
SPEND_BUCKETS_PER_UNIT_LOG = 200


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float


def bgnbd_log_likelihood(m: BgNbd, x: Array, tx: Array, t: Array) -> Array:
    """Per-customer log-likelihood (Fader, Hardie and Lee 2005, eq. 6)."""
    head = gammaln(m.r + x) - gammaln(m.r) + m.r * np.log(m.alpha)
    alive = betaln(m.a, m.b + x) - betaln(m.a, m.b) - (m.r + x) * np.log(m.alpha + t)
    dropped = np.where(
        x > 0,
        betaln(m.a + 1, m.b + np.maximum(x, 1) - 1)
        - betaln(m.a, m.b)
        - (m.r + x) * np.log(m.alpha + tx),
        -np.inf,
    )
    return np.asarray(head + np.logaddexp(alive, dropped), dtype=np.float64)


def fit_bgnbd(x: Array, tx: Array, t: Array, weights: Array) -> BgNbd:
    """Maximum likelihood over (possibly grouped) customers; ``weights`` are group sizes."""

    def loss(log_params: Array) -> float:
        model = BgNbd(*np.exp(log_params))
        return float(-np.sum(weights * bgnbd_log_likelihood(model, x, tx, t)) / np.sum(weights))

    start = np.log(np.array([1.0, max(float(np.average(t, weights=weights)), 1.0), 1.0, 1.0]))
    result = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6})
    return BgNbd(*np.exp(result.x))


def expected_purchases(m: BgNbd, horizon: float, x: Array, tx: Array, t: Array) -> Array:
    """E[purchases in the next ``horizon`` days | x, t_x, T] (eq. 10)."""
    z = horizon / (m.alpha + t + horizon)
    hyper = hyp2f1(m.r + x, m.b + x, m.a + m.b + x - 1, z)
    numerator = (
        (m.a + m.b + x - 1)
        / (m.a - 1)
        * (1 - ((m.alpha + t) / (m.alpha + t + horizon)) ** (m.r + x) * hyper)
    )
    return np.asarray(numerator / _odds_alive_denominator(m, x, tx, t), dtype=np.float64)


def probability_alive(m: BgNbd, x: Array, tx: Array, t: Array) -> Array:
    return np.asarray(1.0 / _odds_alive_denominator(m, x, tx, t), dtype=np.float64)


def _odds_alive_denominator(m: BgNbd, x: Array, tx: Array, t: Array) -> Array:
    ratio = (m.alpha + t) / (m.alpha + tx)
    dropped = m.a / np.maximum(m.b + x - 1, 1e-12) * ratio ** (m.r + x)
    return np.asarray(1.0 + np.where(x > 0, dropped, 0.0), dtype=np.float64)


def gamma_gamma_log_likelihood(m: GammaGamma, x: Array, spend: Array) -> Array:
    """Per-customer log-likelihood of the mean spend over x purchases (x >= 1)."""
    px = m.p * x
    return np.asarray(
        gammaln(px + m.q)
        - gammaln(px)
        - gammaln(m.q)
        + m.q * np.log(m.gamma)
        + (px - 1) * np.log(spend)
        + px * np.log(x)
        - (px + m.q) * np.log(m.gamma + spend * x),
        dtype=np.float64,
    )


def fit_gamma_gamma(x: Array, spend: Array, weights: Array) -> GammaGamma:
    def loss(log_params: Array) -> float:
        model = GammaGamma(*np.exp(log_params))
        return float(
            -np.sum(weights * gamma_gamma_log_likelihood(model, x, spend)) / np.sum(weights)
        )

    start = np.log(np.array([1.0, 2.0, float(np.average(spend, weights=weights))]))
    result = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6})
    return GammaGamma(*np.exp(result.x))


def expected_spend(m: GammaGamma, x: Array, spend: Array) -> Array:
    """E[spend per purchase | x purchases with mean ``spend``]; shrinks towards the mean."""
    return np.asarray((m.gamma + spend * x) * m.p / (m.p * x + m.q - 1), dtype=np.float64)


# ---------------------------------------------------------------- Spark side


def purchase_summary(features: DataFrame) -> DataFrame:
    """Purchasers as (user_key, x, t_x, T, purchases, mean_spend) from ``user_features``."""
    purchase_days = F.col("purchase_days_total")
    return features.where(purchase_days > 0).select(
        "user_key",
        (purchase_days - 1).cast("double").alias("x"),
        (F.col("days_since_first_purchase") - F.col("days_since_last_purchase"))
        .cast("double")
        .alias("t_x"),
        F.col("days_since_first_purchase").cast("double").alias("T"),
        purchase_days.cast("double").alias("purchases"),
        # Spend per purchase day, bucketed (0.5% wide) so equal spenders group together.
        F.exp(
            F.round(F.log(F.greatest(F.col("revenue_total") / purchase_days, F.lit(0.01))) * 200)
            / 200
        ).alias("mean_spend"),
    )


def grouped(summary: DataFrame, keys: list[str]) -> tuple[list[Array], Array]:
    """Distinct key tuples and their counts (the driver sees groups, never users)."""
    rows = summary.groupBy(*keys).agg(F.count(F.lit(1)).alias("n")).collect()
    columns = [np.array([r[k] for r in rows], dtype=np.float64) for k in keys]
    return columns, np.array([r["n"] for r in rows], dtype=np.float64)


@dataclass(frozen=True)
class CustomerValue:
    """Per purchaser predictions, and the fitted models (None when too few purchasers)."""

    predictions: DataFrame
    bgnbd: BgNbd | None
    gamma_gamma: GammaGamma | None


VALUE_COLUMNS = (
    "user_key string, predicted_purchases double, probability_alive double, "
    "expected_spend double, predicted_value double"
)
# Fewer distinct groups than this cannot pin down the models' parameters.
MIN_GROUPS = 5


def customer_value(features: DataFrame, horizon_days: int) -> CustomerValue:
    """Expected purchases and value over ``horizon_days`` per purchaser (see module doc)."""
    spark = features.sparkSession
    summary = purchase_summary(features)  # cheap projection of ``features``: cache that
    (x, tx, t), counts = grouped(summary, ["x", "t_x", "T"])
    (n, spend), spend_counts = grouped(summary, ["purchases", "mean_spend"])
    if len(counts) < MIN_GROUPS or len(spend_counts) < MIN_GROUPS:
        return CustomerValue(spark.createDataFrame([], VALUE_COLUMNS), None, None)
    bgnbd = fit_bgnbd(x, tx, t, counts)
    purchases = expected_purchases(bgnbd, horizon_days, x, tx, t)
    alive = probability_alive(bgnbd, x, tx, t)
    by_triple = spark.createDataFrame(
        [tuple(float(v) for v in row) for row in zip(x, tx, t, purchases, alive, strict=True)],
        "x double, t_x double, T double, predicted_purchases double, probability_alive double",
    )
    gamma_gamma = fit_gamma_gamma(n, spend, spend_counts)
    by_spend = spark.createDataFrame(
        [
            (float(a), float(b), float(c))
            for a, b, c in zip(n, spend, expected_spend(gamma_gamma, n, spend), strict=True)
        ],
        "purchases double, mean_spend double, expected_spend double",
    )
    predictions = (
        summary.join(by_triple, ["x", "t_x", "T"])
        .join(by_spend, ["purchases", "mean_spend"])
        .select(
            "user_key",
            "predicted_purchases",
            "probability_alive",
            F.round("expected_spend", 2).alias("expected_spend"),
            F.round(F.col("predicted_purchases") * F.col("expected_spend"), 2).alias(
                "predicted_value"
            ),
        )
    )
    return CustomerValue(predictions, bgnbd, gamma_gamma)
