"""BG/NBD and Gamma-Gamma recover known parameters from data simulated from the models."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import SparkSession

from userprofile.profile.clv import (
    BgNbd,
    GammaGamma,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    grouped,
    probability_alive,
)

TRUE_BGNBD = BgNbd(r=0.6, alpha=12.0, a=0.9, b=3.0)
TRUE_GG = GammaGamma(p=6.0, q=4.0, gamma=60.0)


def simulate_bgnbd(m: BgNbd, customers: int, seed: int) -> tuple[np.ndarray, ...]:
    """(x, t_x, T) in whole days, as the pipeline summarises purchase days."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(m.r, 1 / m.alpha, customers)
    dropout = rng.beta(m.a, m.b, customers)
    age = rng.integers(30, 180, customers).astype(float)
    x, tx = np.zeros(customers), np.zeros(customers)
    for i in range(customers):
        t = 0.0
        while True:
            t += rng.exponential(1 / rate[i])
            if t > age[i]:
                break
            x[i] += 1
            tx[i] = t
            if rng.random() < dropout[i]:
                break
    return x, np.floor(tx), age


def test_bgnbd_recovers_its_parameters_from_grouped_triples(spark: SparkSession) -> None:
    x, tx, age = simulate_bgnbd(TRUE_BGNBD, 20_000, seed=3)
    rows = [(float(a), float(b), float(c)) for a, b, c in zip(x, tx, age, strict=True)]
    summary = spark.createDataFrame(rows, "x double, t_x double, T double")
    (gx, gtx, gt), counts = grouped(summary, ["x", "t_x", "T"])
    # Customers share triples: the driver sees groups, fewer than customers.
    assert len(counts) < len(rows)
    assert counts.sum() == len(rows)
    fitted = fit_bgnbd(gx, gtx, gt, counts)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE_BGNBD, name), rel=0.25), name
    # A frequent, recent customer is expected to buy more, and is more likely alive,
    # than one who bought as often but stopped long ago.
    x_, tx_, t_ = np.array([10.0, 10.0, 0.0]), np.array([118.0, 20.0, 0.0]), np.full(3, 120.0)
    predicted = expected_purchases(fitted, 30, x_, tx_, t_)
    assert predicted[0] > predicted[1] > 0
    assert predicted[2] > 0
    alive = probability_alive(fitted, x_, tx_, t_)
    assert alive[0] > 0.9 > alive[1]
    assert alive[2] == 1.0  # no repeat purchase yet: BG/NBD cannot have seen a drop-out


def test_expected_purchases_match_simulation() -> None:
    """For customers first seen at the same time, E[purchases in (T, T+h]] matches the average."""
    m = TRUE_BGNBD
    rng = np.random.default_rng(8)
    n, age, horizon = 40_000, 60.0, 30.0
    rate = rng.gamma(m.r, 1 / m.alpha, n)
    dropout = rng.beta(m.a, m.b, n)
    x, tx, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / rate[i])
            if t > age + horizon:
                break
            if t <= age:
                x[i] += 1
                tx[i] = t
            else:
                future[i] += 1
            alive = rng.random() >= dropout[i]
    predicted = expected_purchases(m, horizon, x, tx, np.full(n, age))
    assert predicted.mean() == pytest.approx(future.mean(), rel=0.05)


def test_gamma_gamma_recovers_its_parameters() -> None:
    rng = np.random.default_rng(5)
    customers = 20_000
    x = rng.integers(1, 12, customers).astype(float)
    nu = rng.gamma(TRUE_GG.q, 1 / TRUE_GG.gamma, customers)
    # Each purchase ~ Gamma(p, nu); the mean of x purchases ~ Gamma(p x, nu x).
    spend = rng.gamma(TRUE_GG.p * x, 1 / (nu * x))
    fitted = fit_gamma_gamma(x, spend, np.ones(customers))
    for name in ("p", "q", "gamma"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE_GG, name), rel=0.2), name
    shrunk = expected_spend(fitted, np.array([1.0, 50.0]), np.array([500.0, 500.0]))
    population_mean = TRUE_GG.p * TRUE_GG.gamma / (TRUE_GG.q - 1)
    assert population_mean < shrunk[0] < shrunk[1] < 500  # one purchase says little
