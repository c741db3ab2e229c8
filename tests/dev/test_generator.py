"""The synthetic logs: deterministic, planted truth that holds, realistic dirt."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import GeneratorConfig
from userprofile.dev.generator import (
    DIRT_KINDS,
    EVENT_LOG_SCHEMA,
    generate_events,
    generate_users,
    true_purchase_probability,
)


def fingerprint(lines: DataFrame) -> tuple[int, int]:
    row = lines.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.pmod(F.xxhash64("landing_date", "value"), F.lit(1 << 40))).alias("h"),
    )
    first = row.first()
    assert first is not None
    return first.n, first.h


def test_same_seed_same_logs_other_seed_other_logs(spark: SparkSession) -> None:
    cfg = GeneratorConfig(users=200, days=20, seed=5, dirt_rate=0.05)
    again = fingerprint(generate_events(generate_users(spark, cfg), cfg))
    assert fingerprint(generate_events(generate_users(spark, cfg), cfg)) == again
    other = cfg.model_copy(update={"seed": 6})
    assert fingerprint(generate_events(generate_users(spark, other), other)) != again


def test_persona_shares_follow_config(spark: SparkSession) -> None:
    cfg = GeneratorConfig(
        users=5000,
        days=5,
        personas={
            "loyal_big_spender": 1,
            "dormant": 3,
            "bargain_hunter": 0,
            "window_shopper": 0,
            "new_user": 0,
        },
    )
    shares = {
        r.persona: r["count"] / 5000
        for r in generate_users(spark, cfg).groupBy("persona").count().collect()
    }
    assert set(shares) == {"loyal_big_spender", "dormant"}
    assert shares["dormant"] == pytest.approx(0.75, abs=0.03)


def test_planted_purchase_probability_matches_the_logs(spark: SparkSession) -> None:
    """Per persona, the share of users who buy in [D, D+30) is close to the planted odds."""
    cfg = GeneratorConfig(users=3000, days=90, seed=3, dirt_rate=0.0, late_rate=0.0)
    as_of = cfg.start_date + dt.timedelta(days=40)
    users = generate_users(spark, cfg)
    events = (
        generate_events(users, cfg)
        .select(F.from_json("value", EVENT_LOG_SCHEMA).alias("e"))
        .select("e.*")
    )
    window = (F.to_date("event_ts") >= F.lit(as_of)) & (
        F.to_date("event_ts") < F.lit(as_of + dt.timedelta(days=30))
    )
    buyers = events.where(window & (F.col("event_type") == "purchase")).select("user_id").distinct()
    truth = true_purchase_probability(users, as_of, 30)
    compared = (
        truth.join(buyers.withColumn("bought", F.lit(1.0)), "user_id", "left")
        .fillna({"bought": 0.0})
        .groupBy("persona")
        .agg(
            F.avg("true_probability").alias("planted"),
            F.avg("bought").alias("observed"),
            F.count("*").alias("n"),
        )
        .collect()
    )
    assert len(compared) == 5
    for row in compared:
        # 4 standard errors of a share over n users; personas differ by far more than that.
        tolerance = 4 * (max(row.planted * (1 - row.planted), 0.01) / row.n) ** 0.5
        assert abs(row.observed - row.planted) < tolerance, row
    planted = {r.persona: r.planted for r in compared}
    assert planted["loyal_big_spender"] > planted["window_shopper"] * 5
    assert planted["dormant"] < planted["bargain_hunter"]


def test_dirt_late_data_and_personal_fields(spark: SparkSession) -> None:
    cfg = GeneratorConfig(users=300, days=30, seed=9, dirt_rate=0.12, late_rate=0.05)
    lines = generate_events(generate_users(spark, cfg), cfg).cache()
    parsed = lines.select(
        "landing_date",
        "value",
        F.from_json(
            "value",
            f"{EVENT_LOG_SCHEMA}, _corrupt_record string",
            {"columnNameOfCorruptRecord": "_corrupt_record"},
        ).alias("e"),
    )
    total = lines.count()
    malformed = parsed.where(F.col("e._corrupt_record").isNotNull()).count() / total
    per_kind = cfg.dirt_rate / len(DIRT_KINDS)
    assert per_kind * 0.6 < malformed < per_kind * 1.5
    duplicated = (
        parsed.groupBy("e.event_id").count().where("count > 1 AND event_id IS NOT NULL").count()
    )
    assert duplicated > 0
    late = parsed.where(F.col("landing_date") > F.substring("e.event_ts", 1, 10)).count() / total
    assert 0.03 < late < 0.1
    anonymous = parsed.where(
        F.col("e.user_id").isNull() & F.col("e.anonymous_id").isNotNull()
    ).count()
    assert anonymous > 0  # pre-login events
    assert parsed.where(F.col("e.email").contains("@")).count() > total * 0.5
    lines.unpersist()
