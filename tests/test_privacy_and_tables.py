"""Pseudonymisation matches RFC 2104 HMAC; table names resolve to the right kind."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from userprofile.privacy import hmac_sha256_hex
from userprofile.tables import resolve


@pytest.mark.parametrize("key", [b"k" * 16, b"a-much-longer-key-" * 8, "ключ-ünïcode".encode()])
def test_hmac_matches_python_hmac(spark: SparkSession, key: bytes) -> None:
    values = ["U000000001", "ü-ñ-漢字", ""]
    rows = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r.h for r in rows.select(hmac_sha256_hex(key, F.col("v")).alias("h")).collect()]
    assert got == [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in values]


def test_hmac_keeps_null(spark: SparkSession) -> None:
    rows = spark.createDataFrame([(None,)], "v string")
    assert rows.select(hmac_sha256_hex(b"k" * 16, F.col("v")).alias("h")).first().h is None


def test_table_names_resolve(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        tables={
            "user_profile": "main.userprofile.user_profile",
            "silver_events": "s3a://bucket/silver/events",
            "bronze_events": "/abs/bronze",
        }
    )
    assert resolve(settings, "user_profile").name == "main.userprofile.user_profile"
    assert resolve(settings, "silver_events").path == "s3a://bucket/silver/events"
    assert resolve(settings, "bronze_events").path == "/abs/bronze"
    relative = resolve(settings, "user_features")
    assert relative.name is None
    assert relative.path == f"{settings.storage.warehouse}/gold/user_features"
