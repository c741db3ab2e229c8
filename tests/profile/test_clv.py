"""BG/NBD and Gamma-Gamma: known parameters recovered from data simulated from the models,
the populations each is fitted on, and likelihoods and expectations checked against the
papers' formulas worked by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.profile.clv import (
    BGNBD_KEYS,
    BgNbd,
    CustomerValue,
    GammaGamma,
    bgnbd_log_likelihood,
    bin_days,
    binned,
    customer_value,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    grouped,
    probability_alive,
    purchase_summary,
    repeat_customers,
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


# ------------------------------------------------------------------ Gamma-Gamma

FEATURE_COLUMNS = (
    "user_key string, purchase_days_total int, days_since_first_purchase int, "
    "days_since_last_purchase int, revenue_total double, revenue_first_purchase_day double"
)
# First orders are bigger than repeat ones (as on real data): a fit that let them in would drift.
FIRST_ORDER_FACTOR = 3.0


def simulate_spend(m: GammaGamma, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(revenue_total, revenue on the first purchase day) over x + 1 purchase days:
    nu ~ Gamma(q, rate gamma) per customer, each repeat day ~ Gamma(p, rate nu)."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(m.q, 1 / m.gamma, len(x))
    days = x.astype(int) + 1
    spend = rng.gamma(m.p, 1 / np.repeat(nu, days))
    first_days = np.concatenate([[0], np.cumsum(days)[:-1]])
    spend[first_days] *= FIRST_ORDER_FACTOR
    return np.add.reduceat(spend, first_days), spend[first_days]


def features_frame(
    spark: SparkSession,
    x: np.ndarray,
    tx: np.ndarray,
    age: np.ndarray,
    revenue: np.ndarray,
    first_revenue: np.ndarray,
    non_purchasers: int = 0,
) -> DataFrame:
    """The ``user_features`` columns the CLV reads; non-purchasers have no purchase days."""
    rows = [
        (f"u{i}", int(n) + 1, int(a), int(a - t), float(r), float(f))
        for i, (n, t, a, r, f) in enumerate(zip(x, tx, age, revenue, first_revenue, strict=True))
    ]
    rows += [(f"never{i}", 0, None, None, 0.0, None) for i in range(non_purchasers)]
    return spark.createDataFrame(rows, FEATURE_COLUMNS)


def gamma_gamma_fit(frame: DataFrame) -> tuple[GammaGamma, list[np.ndarray], np.ndarray]:
    """The Spark summary, grouped to (x, m_x) pairs, fitted on the driver."""
    (x, spend), counts = grouped(purchase_summary(frame), ["x", "m_x"])
    return fit_gamma_gamma(x, spend, counts), [x, spend], counts


def gamma_gamma_density_by_hand(m: GammaGamma, x: float, spend: float) -> float:
    """log f(m_x | p, q, gamma, x), the density of a mean of x repeat spends (Fader, Hardie and
    Lee 2005, "RFM and CLV"), written out: Gamma(px + q) / (Gamma(px) Gamma(q))
    * gamma^q m_x^(px - 1) x^(px) / (gamma + m_x x)^(px + q)."""
    px = m.p * x
    return (
        math.lgamma(px + m.q)
        - math.lgamma(px)
        - math.lgamma(m.q)
        + m.q * math.log(m.gamma)
        + (px - 1) * math.log(spend)
        + px * math.log(x)
        - (px + m.q) * math.log(m.gamma + spend * x)
    )


def test_gamma_gamma_recovers_its_parameters_from_repeat_purchase_days(
    spark: SparkSession,
) -> None:
    """8,000 simulated customers, 0-15 repeat days. Over seeds 0-9 the fitted p and gamma
    (which trade off: only each customer's mean is seen) stayed within 26% and 42% of the
    truth, q within 5%, the population mean p gamma / (q - 1) within 2%: tolerances 50%,
    50%, 10%, 5%. With first purchases in, p and gamma were off by factors of 10 to 10^6."""
    customers = 8_000
    x = np.random.default_rng(7).integers(0, 16, customers).astype(float)
    revenue, first_revenue = simulate_spend(TRUE_GG, x, seed=7)
    age = np.full(customers, 200.0)
    frame = features_frame(spark, x, np.minimum(x * 10, 199), age, revenue, first_revenue, 50)
    fitted, (gx, gspend), counts = gamma_gamma_fit(frame)
    # Everyone who bought is summarised; the fit sees the repeat customers, as groups.
    assert counts.sum() == customers
    in_fit = repeat_customers(gx, gspend)
    assert counts[in_fit].sum() == np.sum(x >= 1)
    assert in_fit.sum() < np.sum(x >= 1)
    assert fitted.p == pytest.approx(TRUE_GG.p, rel=0.5)
    assert fitted.q == pytest.approx(TRUE_GG.q, rel=0.1)
    assert fitted.gamma == pytest.approx(TRUE_GG.gamma, rel=0.5)
    assert fitted.population_mean_spend == pytest.approx(TRUE_GG.population_mean_spend, rel=0.05)
    # The stored log-likelihood is the total over repeat customers, and it is the maximum.
    by_hand = [
        n * gamma_gamma_density_by_hand(fitted, a, s)
        for a, s, n in zip(gx[in_fit], gspend[in_fit], counts[in_fit], strict=True)
    ]
    assert fitted.log_likelihood == pytest.approx(math.fsum(by_hand), rel=1e-9)
    truth = replace(fitted, p=TRUE_GG.p, q=TRUE_GG.q, gamma=TRUE_GG.gamma)
    at_truth = [
        n * gamma_gamma_density_by_hand(truth, a, s)
        for a, s, n in zip(gx[in_fit], gspend[in_fit], counts[in_fit], strict=True)
    ]
    assert fitted.log_likelihood >= math.fsum(at_truth)


def test_one_time_buyers_and_first_purchases_do_not_enter_gamma_gamma(
    spark: SparkSession,
) -> None:
    customers = 3_000
    x = np.random.default_rng(21).integers(1, 10, customers).astype(float)
    revenue, first_revenue = simulate_spend(TRUE_GG, x, seed=21)
    tx, age = np.minimum(x * 10, 99), np.full(customers, 100.0)
    base, (gx, gspend), counts = gamma_gamma_fit(
        features_frame(spark, x, tx, age, revenue, first_revenue)
    )
    # The fit itself ignores customers without a repeat purchase, whatever spend they carry,
    # and repeat customers whose repeat days netted to nothing (cancellations).
    with_one_time = fit_gamma_gamma(
        np.append(gx, [0.0, 2.0]), np.append(gspend, [1e6, 0.0]), np.append(counts, [300, 40])
    )
    for name in ("p", "q", "gamma", "log_likelihood"):
        assert getattr(with_one_time, name) == pytest.approx(getattr(base, name), rel=1e-9), name
    # Every first purchase 50 times bigger, and 300 one-time buyers of 1,000,000 each.
    bigger_first = first_revenue * 50
    changed_revenue = revenue - first_revenue + bigger_first
    one_time = np.zeros(300)
    absurd = np.full(300, 1e6)
    changed = features_frame(
        spark,
        np.concatenate([x, one_time]),
        np.concatenate([tx, one_time]),
        np.concatenate([age, np.full(300, 100.0)]),
        np.concatenate([changed_revenue, absurd]),
        np.concatenate([bigger_first, absurd]),
    )
    fitted, _, _ = gamma_gamma_fit(changed)
    for name in ("p", "q", "gamma", "log_likelihood"):
        assert getattr(fitted, name) == pytest.approx(getattr(base, name), rel=1e-9), name
    # The change is not too small to matter: a fit over all purchase days moves by far.
    all_days = fit_gamma_gamma(
        np.concatenate([x, one_time]) + 1,
        np.concatenate([changed_revenue / (x + 1), absurd]),
        np.ones(customers + 300),
    )
    assert not 0.5 < all_days.gamma / base.gamma < 2


def test_expected_spend_worked_by_hand() -> None:
    m = GammaGamma(p=6.0, q=4.0, gamma=60.0)
    x = np.array([0.0, 0.0, 1.0, 3.0])
    spend = np.array([0.0, 999.0, 50.0, 100.0])
    # p (gamma + x m_x) / (p x + q - 1):
    #   x = 0:            6 * 60 / 3                   = 120 (m_x plays no part)
    #   x = 1, m_x = 50:  6 * (60 + 50) / (6 + 3)      = 660 / 9
    #   x = 3, m_x = 100: 6 * (60 + 300) / (18 + 3)    = 2160 / 21
    expected = [120.0, 120.0, 660 / 9, 2160 / 21]
    assert expected_spend(m, x, spend) == pytest.approx(expected, rel=1e-12)
    assert m.population_mean_spend == 120.0  # p gamma / (q - 1) = 360 / 3
    # q <= 1: the population mean spend is infinite; nothing is claimed.
    heavy_tailed = GammaGamma(p=6.0, q=1.0, gamma=60.0)
    assert math.isnan(heavy_tailed.population_mean_spend)
    assert math.isnan(expected_spend(heavy_tailed, np.array([0.0]), np.array([0.0]))[0])


# ------------------------------------------------------------- BG/NBD likelihood


def bgnbd_likelihood_by_hand(m: BgNbd, x: float, tx: float, t: float) -> float:
    """Eq. 6 of "Counting Your Customers the Easy Way", in likelihood space:
    Gamma(r + x) alpha^r / Gamma(r) * [B(a, b + x) / B(a, b) (alpha + T)^-(r + x)
    + (x > 0) B(a + 1, b + x - 1) / B(a, b) (alpha + t_x)^-(r + x)]."""

    def beta(a: float, b: float) -> float:
        return math.gamma(a) * math.gamma(b) / math.gamma(a + b)

    head = math.exp(math.lgamma(m.r + x) - math.lgamma(m.r)) * m.alpha**m.r
    alive = beta(m.a, m.b + x) / beta(m.a, m.b) * (m.alpha + t) ** -(m.r + x)
    dropped = beta(m.a + 1, m.b + x - 1) / beta(m.a, m.b) * (m.alpha + tx) ** -(m.r + x)
    return head * (alive + (dropped if x > 0 else 0.0))


def test_bgnbd_log_likelihood_worked_by_hand() -> None:
    m = BgNbd(r=1.0, alpha=2.0, a=1.0, b=2.0)
    x, tx, t = np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 3.0]), np.full(3, 4.0)
    # Gamma(1 + x) 2 / Gamma(1) = 2 (x = 0, 1) or 4 (x = 2); B(1, n) = 1 / n; B(1, 2) = 1/2.
    #   one purchase day, x = 0: 2 * 1 * 6^-1                                      = 1/3
    #     (no drop-out term: with it, 2 * (1/6 + B(2, 1) / B(1, 2) * 2^-1) = 4/3)
    #   two purchase days, x = 1: 2 * ((1/3)/(1/2) 6^-2 + B(2, 2)/(1/2) 4^-2)
    #                           = 2 * (2/3 / 36 + 1/3 / 16) = 1/27 + 1/24     = 17/216
    #   x = 2: 4 * ((1/4)/(1/2) 6^-3 + B(2, 3)/(1/2) 5^-3) = 1/108 + 4/750    = 1/108 + 2/375
    by_hand = [1 / 3, 17 / 216, 1 / 108 + 2 / 375]
    assert np.exp(bgnbd_log_likelihood(m, x, tx, t)) == pytest.approx(by_hand, rel=1e-12)
    assert [bgnbd_likelihood_by_hand(m, *c) for c in zip(x, tx, t, strict=True)] == pytest.approx(
        by_hand
    )


# -------------------------------------------------------- customer_value, end to end


@pytest.fixture(scope="module")
def valued(spark: SparkSession) -> tuple[CustomerValue, dict[str, tuple[float, ...]], dict]:
    """customer_value over simulated purchasers, two pinned ones and non-purchasers."""
    x, tx, age = simulate_bgnbd(TRUE_BGNBD, 3_000, seed=13)
    revenue, first_revenue = simulate_spend(TRUE_GG, x, seed=13)
    # Pinned: one purchase day of 500; two purchase days, 400 then 100 (m_x = 100); three,
    # 600 on the first and -150 net on the two others (cancellations: m_x = 0).
    x, tx = np.append(x, [0.0, 1.0, 2.0]), np.append(tx, [0.0, 30.0, 40.0])
    age = np.append(age, [90.0, 90.0, 90.0])
    revenue = np.append(revenue, [500.0, 500.0, 450.0])
    first_revenue = np.append(first_revenue, [500.0, 400.0, 600.0])
    frame = features_frame(spark, x, tx, age, revenue, first_revenue, non_purchasers=20)
    value = customer_value(frame, horizon_days=90)
    customers = {f"u{i}": (a, b, c) for i, (a, b, c) in enumerate(zip(x, tx, age, strict=True))}
    predictions = {r.user_key: r for r in value.predictions.collect()}
    return value, customers, predictions


def test_customer_value_spend_population_mean_for_one_time_buyers(valued: tuple) -> None:
    value, customers, predictions = valued
    gg = value.gamma_gamma
    assert gg is not None
    one_day, two_days, cancelled = (f"u{len(customers) - k}" for k in (3, 2, 1))
    assert predictions[one_day].expected_spend == round(gg.population_mean_spend, 2)
    # x = 1, m_x = 100 (bucketed 0.5% wide: within 0.25%): p (gamma + 100) / (p + q - 1).
    by_hand = gg.p * (gg.gamma + 100.0) / (gg.p + gg.q - 1)
    assert predictions[two_days].expected_spend == pytest.approx(by_hand, rel=3e-3)
    assert predictions[two_days].expected_spend < predictions[one_day].expected_spend
    # x = 2, m_x = 0: p gamma / (2 p + q - 1).
    nothing_back = gg.p * gg.gamma / (2 * gg.p + gg.q - 1)
    assert predictions[cancelled].expected_spend == round(nothing_back, 2)
    one_time = [k for k, (x, _, _) in customers.items() if x == 0]
    assert len(one_time) > 100
    assert {predictions[k].expected_spend for k in one_time} == {
        predictions[one_day].expected_spend
    }
    # Never purchased: no prediction (the profile contract leaves them null).
    assert set(predictions) == set(customers)


def weekly_groups(customers: dict[str, tuple[float, ...]]) -> list[tuple[float, ...]]:
    """(x, mean t_x, mean T, customers) per (x, week of t_x, week of T), worked by hand."""
    cells: dict[tuple[float, float, float], list[tuple[float, float]]] = {}
    for x, tx, t in customers.values():
        cells.setdefault((x, tx // 7, t // 7), []).append((tx, t))
    return [
        (x, float(np.mean([c[0] for c in cell])), float(np.mean([c[1] for c in cell])), len(cell))
        for (x, _, _), cell in cells.items()
    ]


def test_stored_bgnbd_log_likelihood_is_the_total_over_weekly_groups(valued: tuple) -> None:
    """The fit sees purchasers grouped by x and the weeks of t_x and T, each group at its
    members' mean t_x and T: the stored total is over those groups, and within 0.1% of the
    total over purchasers (0.02% here)."""
    value, customers, _ = valued
    fitted = value.bgnbd
    assert fitted is not None
    groups = weekly_groups(customers)
    assert len(groups) < len(customers)
    by_group = [n * math.log(bgnbd_likelihood_by_hand(fitted, x, tx, t)) for x, tx, t, n in groups]
    assert fitted.log_likelihood == pytest.approx(math.fsum(by_group), rel=1e-9)

    def per_customer(m: BgNbd) -> float:
        return math.fsum(math.log(bgnbd_likelihood_by_hand(m, *c)) for c in customers.values())

    at_fit = per_customer(fitted)
    assert fitted.log_likelihood == pytest.approx(at_fit, rel=1e-3)
    # ... and the fit is the maximum: the true and nearby parameters explain the data less well.
    for other in (
        TRUE_BGNBD,
        replace(fitted, r=fitted.r * 1.05),
        replace(fitted, b=fitted.b * 0.95),
    ):
        assert at_fit > per_customer(other)


def test_predictions_per_purchaser_follow_the_formulas(valued: tuple) -> None:
    """P(alive) is computed per purchaser in Spark from the daily x, t_x and T, exactly;
    expected purchases interpolate E[purchases | alive], which depends on x and T only,
    between the edges of each 7 days of T, linearly in 1 / (alpha + T): 0.014% off on
    average, 0.12% at most (linearly in T: 0.07%, 0.43%)."""
    value, customers, predictions = valued
    fitted = value.bgnbd
    assert fitted is not None
    x, tx, t = (np.array(column) for column in zip(*customers.values(), strict=True))
    alive = [predictions[k].probability_alive for k in customers]
    assert alive == pytest.approx(probability_alive(fitted, x, tx, t), rel=1e-9)
    purchases = [predictions[k].predicted_purchases for k in customers]
    assert purchases == pytest.approx(expected_purchases(fitted, 90, x, tx, t), rel=2e-3)


def test_purchasers_in_one_week_share_a_group_and_the_groups_are_bounded(
    spark: SparkSession,
) -> None:
    # One repeat purchase on day 3 each; first purchases 7, 8, 13 and 14 days ago.
    ages = np.array([7.0, 8.0, 13.0, 14.0])
    summary = purchase_summary(
        features_frame(spark, np.ones(4), np.full(4, 3.0), ages, np.full(4, 90.0), np.full(4, 50.0))
    )
    assert bin_days(summary) == 7
    (x, tx_bin, t_bin, tx, t), counts = grouped(binned(summary, 7), BGNBD_KEYS, ("t_x", "T"))
    # T = 7, 8 and 13 are in week 1, T = 14 starts week 2: the driver sees two groups.
    assert x.tolist() == [1, 1]
    assert tx_bin.tolist() == [0, 0]
    assert t_bin.tolist() == [1, 2]
    assert counts.tolist() == [3, 1]
    assert t.tolist() == pytest.approx([28 / 3, 14])
    assert tx.tolist() == [3, 3]
    # At most max_groups groups: the bins double until there are no more.
    assert bin_days(summary, max_groups=2) == 7
    assert bin_days(summary, max_groups=1) == 28  # 14-day bins still part T = 13 and 14


def test_group_means_are_exact_whatever_the_order(spark: SparkSession) -> None:
    # Averaged as doubles, 0.1, 0.2 and 0.3 do not give 0.2 in any order.
    summary = spark.createDataFrame([(1, 0.3), (1, 0.1), (1, 0.2)], "x int, m_x double")
    (x, spend), counts = grouped(summary.repartition(3), ["x"], ("m_x",))
    assert (x.tolist(), spend.tolist(), counts.tolist()) == ([1], [0.2], [3])


def test_without_first_purchase_revenue_spend_averages_all_days_and_warns(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Today's user_features has no revenue_first_purchase_day: the fallback is stated."""
    frame = features_frame(
        spark,
        np.array([0.0, 1.0]),
        np.array([0.0, 10.0]),
        np.full(2, 50.0),
        np.array([80.0, 500.0]),
        np.array([80.0, 400.0]),
    ).drop("revenue_first_purchase_day")
    with caplog.at_level("WARNING", logger="userprofile.profile.clv"):
        summary = {r.user_key: r for r in purchase_summary(frame).collect()}
    assert "revenue_first_purchase_day" in caplog.text
    assert summary["u0"].m_x == 0.0  # one purchase day: nothing to average
    # 500 over two days (first included) = 250, bucketed within 0.25%.
    assert summary["u1"].m_x == pytest.approx(250.0, rel=2.5e-3)
    assert summary["u1"].m_x != pytest.approx(100.0, rel=0.1)


def test_a_snapshot_stored_before_first_day_revenue_averages_all_days(spark: SparkSession) -> None:
    """Snapshots written by an older release read the new column as null: row by row fallback."""
    frame = features_frame(
        spark,
        np.array([1.0, 1.0]),
        np.array([10.0, 10.0]),
        np.full(2, 50.0),
        np.array([500.0, 500.0]),
        np.array([400.0, 400.0]),
    ).withColumn(
        "revenue_first_purchase_day",
        F.when(F.col("user_key") == "u1", F.col("revenue_first_purchase_day")),
    )
    summary = {r.user_key: r.m_x for r in purchase_summary(frame).collect()}
    assert summary["u0"] == pytest.approx(250.0, rel=2.5e-3)  # null: all days, first included
    assert summary["u1"] == pytest.approx(100.0, rel=2.5e-3)  # 500 - 400 over one repeat day
