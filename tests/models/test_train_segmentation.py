"""Fitting segments on behaviour we know: names say what sets each segment apart, agree with
the users' recency, and stay unique without numbers on invoice-line data."""

from __future__ import annotations

import random
import re

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import SegmentationConfig, SegmentRule
from userprofile.features.catalog import CENTRE_COLUMNS
from userprofile.models.metrics import Metrics
from userprofile.models.train_segmentation import TrainedSegmentation, fit_segmentation

DAY_COLUMNS = ("orders_90d", "sessions_90d", "recency_days", "days_since_last_purchase")
FEATURES = "user_key string, persona string, " + ", ".join(
    f"{c} {'int' if c in (*DAY_COLUMNS, 'tenure_days') else 'double'}" for c in CENTRE_COLUMNS
)
RECENT_WORDS = {"recent", "very recent"}
LAPSED_WORDS = {"lapsed", "long lapsed"}
# The rules conf/base.yaml named segments with before names described them.
OLD_RULES = [
    SegmentRule(name="dormant", when="recency_days > 30"),
    SegmentRule(name="new users", when="tenure_days <= 45"),
    SegmentRule(
        name="loyal high spenders", when="orders_per_session >= 0.1 AND avg_item_price >= 100"
    ),
    SegmentRule(name="bargain hunters", when="search_share >= 0.25"),
    SegmentRule(name="window shoppers", when="orders_per_session < 0.03"),
    SegmentRule(name="regular customers", when="true"),
]


def persona_users(spark: SparkSession, per_persona: int = 40) -> DataFrame:
    """Four behaviours, in CENTRE_COLUMNS order after (user_key, persona)."""
    rng = random.Random(3)
    u = rng.uniform
    rows = []
    for _ in range(per_persona):
        orders, spend = rng.randint(8, 14), round(u(900, 1500), 2)
        rows += [
            # Recent, frequent big spenders, customers for a year.
            ("champion", orders, spend, rng.randint(20, 30), rng.randint(0, 3), rng.randint(0, 3),
             rng.randint(300, 400), u(80, 120), spend / orders, u(0.35, 0.5), u(0.05, 0.15),
             u(0.3, 0.5), u(0.05, 0.15), u(-0.1, 0.2)),
            # Bought once, months ago; idle since (no trend).
            ("lapsed one-time", 0, 0.0, 0, rng.randint(150, 220), rng.randint(150, 220),
             rng.randint(200, 300), u(20, 40), u(20, 40), u(0.4, 0.6), u(0.05, 0.15),
             u(0.4, 0.6), u(0.05, 0.15), None),
            # Many views and searches, never an order.
            ("window shopper", 0, 0.0, rng.randint(15, 25), rng.randint(1, 8), None,
             rng.randint(150, 250), u(40, 70), None, 0.0, u(0.25, 0.4), u(0.6, 0.8),
             u(0.2, 0.4), u(-0.1, 0.1)),
            # Joined days ago, one first order.
            ("new", 1, round(u(40, 80), 2), rng.randint(2, 4), rng.randint(0, 5),
             rng.randint(0, 5), rng.randint(2, 12), u(30, 50), u(40, 80), u(0.25, 0.5),
             u(0.1, 0.2), u(0.5, 0.7), u(0.1, 0.2), 1.0),
        ]  # fmt: skip
    return spark.createDataFrame([(f"p{i}", *r) for i, r in enumerate(rows)], FEATURES)


def invoice_users(spark: SparkSession, users: int = 600) -> DataFrame:
    """What user_features makes of invoice lines: purchases and cancels only, one session per
    invoice, no views, searches, devices or night hours; three in four users away > 30 days."""
    rng = random.Random(5)
    rows = []
    for i in range(users):
        recency = rng.randint(0, 30) if rng.random() < 0.25 else rng.randint(31, 370)
        tenure = min(373, recency + int(rng.expovariate(1 / 120)))
        invoices = 1 + int(rng.expovariate(1 / 4))
        share_90d = min(1.0, (90 - recency) / max(tenure - recency, 1) + 0.2)
        orders = 0 if recency > 90 else max(1, int(invoices * share_90d))
        basket = round(rng.lognormvariate(5.6, 0.7), 2)
        cancels = int(rng.random() < 0.15)
        # Idle in the last 60 days: no trend.
        trend = rng.choice([1.0, -1.0, round(rng.uniform(-1, 1), 4)]) if recency < 60 else None
        rows.append(
            (f"c{i}", "invoice", orders, round(orders * basket, 2), orders + cancels * (orders > 0),
             recency, recency, tenure, round(rng.lognormvariate(1.0, 0.6), 2), basket,
             invoices / (invoices + cancels), 0.0, 0.0, 0.0, trend)
        )  # fmt: skip
    return spark.createDataFrame(rows, FEATURES)


def fit(users: DataFrame, k: int, names: list[SegmentRule] | None = None) -> TrainedSegmentation:
    cfg = SegmentationConfig(
        k_min=k, k_max=k, sample_size=100, restarts=2, max_iter=20, names=names or []
    )
    return fit_segmentation(users, cfg, [], Metrics())


def recency_quantile(users: DataFrame, days: float) -> float:
    """The share of users with fewer days since their last visit (ties count half): exact."""
    recency = F.col("recency_days")
    share = F.avg((recency < days).cast("double") + 0.5 * (recency == days).cast("double"))
    return float(users.agg(share).first()[0])


def assert_recency_words_agree(users: DataFrame, trained: TrainedSegmentation) -> None:
    """A recency word only on the side of the population's median where the centre is."""
    for s in trained.segments:
        days = trained.centres[s.segment_id]["recency_days"]
        words, quantile = set(s.name.split(", ")), recency_quantile(users, days)
        if words & RECENT_WORDS:
            assert quantile < 0.5, (s.name, quantile)
            assert days <= 30, (s.name, days)
        if words & LAPSED_WORDS:
            assert quantile > 0.5, (s.name, quantile)
            assert days > 30, (s.name, days)


@pytest.fixture(scope="module")
def personas(spark: SparkSession) -> DataFrame:
    return persona_users(spark).cache()


@pytest.fixture(scope="module")
def invoices(spark: SparkSession) -> DataFrame:
    return invoice_users(spark).cache()


def test_personas_are_named_by_what_sets_them_apart(
    spark: SparkSession, personas: DataFrame
) -> None:
    trained = fit(personas, k=4)
    assigned = trained.model.transform(personas)
    per_persona = assigned.groupBy("persona").agg(
        F.count_distinct("segment_id").alias("segments"), F.first("segment_name").alias("name")
    )
    expected = spark.createDataFrame(
        [(p, 1) for p in ("champion", "lapsed one-time", "window shopper", "new")],
        "persona string, segments long",
    )
    assert_df_equality(
        per_persona.select("persona", "segments"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    names = {r.persona: set(r.name.split(", ")) for r in per_persona.collect()}
    assert names["champion"] & {"high spend", "very high spend"}, names
    assert names["champion"] & {"frequent", "very frequent"}, names
    assert names["lapsed one-time"] & LAPSED_WORDS, names
    assert "never bought" in names["window shopper"], names
    assert names["new"] & {"new", "very new"}, names
    assert_recency_words_agree(personas, trained)


def test_invoice_lines_get_unique_names_without_numbers(invoices: DataFrame) -> None:
    trained = fit(invoices, k=7)
    centres = trained.centres.values()
    # The old first rule, `dormant: recency_days > 30`, held for most segments of such data.
    assert sum(c["recency_days"] > 30 for c in centres) >= 4
    names = [s.name for s in trained.segments]
    assert len(set(names)) == len(names) == 7
    assert not [n for n in names if re.search(r"\d", n)]
    assert_recency_words_agree(invoices, trained)
    # The segments of recent buyers are never called lapsed.
    recent = [
        s.name for s in trained.segments if trained.centres[s.segment_id]["recency_days"] <= 30
    ]
    assert recent
    assert not [n for n in recent if set(n.split(", ")) & LAPSED_WORDS]


def test_old_rules_as_overrides_no_longer_number_their_names(invoices: DataFrame) -> None:
    names = [s.name for s in fit(invoices, k=7, names=OLD_RULES).segments]
    assert sum(n.startswith("dormant (") for n in names) >= 4
    assert len(set(names)) == len(names)
    assert not [n for n in names if re.search(r"\d", n)]
