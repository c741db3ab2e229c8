"""Pseudonymisation matches RFC 2104 HMAC; the key comes from the environment."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import write_conf
from userprofile.config import load_settings
from userprofile.errors import ConfigError
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym, pseudonym_key


@pytest.mark.parametrize("key", [b"k" * 16, b"a-much-longer-key-" * 8, "ключ-ünïcode".encode()])
def test_hmac_matches_python_hmac(spark: SparkSession, key: bytes) -> None:
    values = ["U000000001", "ü-ñ-漢字", ""]
    rows = spark.createDataFrame([(v,) for v in values], "v string")
    got = rows.select("v", hmac_sha256_hex(key, F.col("v")).alias("h"))
    # The reference is Python's own hmac module, not the code under test.
    expected = spark.createDataFrame(
        [(v, hmac.new(key, v.encode(), hashlib.sha256).hexdigest()) for v in values],
        "v string, h string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_hmac_keeps_null(spark: SparkSession) -> None:
    rows = spark.createDataFrame([(None,)], "v string")
    got = rows.select(hmac_sha256_hex(b"k" * 16, F.col("v")).alias("h"))
    expected = spark.createDataFrame([(None,)], "h string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_pseudonym_key_comes_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = write_conf(tmp_path / "c.yaml", {"privacy": {"pseudonym_key_env": "UP_TEST_KEY"}})
    settings = load_settings(conf)
    monkeypatch.delenv("UP_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"UP_TEST_KEY.*not set"):
        pseudonym_key(settings)
    monkeypatch.setenv("UP_TEST_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        pseudonym_key(settings)
    monkeypatch.setenv("UP_TEST_KEY", "x" * 32)
    assert pseudonym_key(settings) == b"x" * 32


def test_hmac_of_other_values_is_that_of_their_utf8_text(spark: SparkSession) -> None:
    key = b"k" * 16
    rows = spark.range(1).select(
        # Bytes that are no UTF-8: Spark reads them as U+FFFD (raw log lines can hold them).
        F.unhex(F.lit("41C328FF42")).cast("string").alias("malformed"),
        F.lit(12345).alias("number"),
    )
    got = rows.select(
        hmac_sha256_hex(key, F.col("malformed")).alias("malformed"),
        hmac_sha256_hex(key, F.col("number")).alias("number"),
    ).first()
    assert got is not None
    assert got.malformed == hmac.new(key, "A\ufffd(\ufffdB".encode(), hashlib.sha256).hexdigest()
    assert got.number == hmac.new(key, b"12345", hashlib.sha256).hexdigest()


def test_the_driver_pseudonym_is_the_column_pseudonym(spark: SparkSession) -> None:
    key = b"another-key-0123456789"
    values = ["U000000042", "ü-ñ-漢字", ""]
    rows = spark.createDataFrame([(v,) for v in values], "v string")
    got = {
        r.v: r.h for r in rows.select("v", hmac_sha256_hex(key, F.col("v")).alias("h")).collect()
    }
    assert got == {v: pseudonym(key, v) for v in values}
