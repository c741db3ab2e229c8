"""Errors stored in ``pipeline_runs`` or printed by the CLI hold no data values and no key."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from userprofile.errors import REDACTED, ConfigError, DataQualityError, scrubbed
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport
from userprofile.pipeline import FAILED, _recorded

KEY_VAR = "USERPROFILE_PSEUDONYM_KEY"
RAW_ID = "alice@example.com"


def failing_cast(spark: SparkSession, value: str) -> StepReport:
    """A real Spark error whose message quotes the value it failed on."""
    spark.sql("SELECT CAST(:value AS INT) AS n", args={"value": value}).collect()
    raise AssertionError("the cast should have failed")  # pragma: no cover


def test_a_spark_error_loses_the_value_it_quotes(spark: SparkSession) -> None:
    with pytest.raises(Exception, match="CAST_INVALID_INPUT") as caught:
        failing_cast(spark, RAW_ID)
    assert RAW_ID in str(caught.value)  # Spark does quote it: the scrub has work to do
    text = scrubbed(caught.value)
    assert RAW_ID not in text
    assert REDACTED in text
    assert "CAST_INVALID_INPUT" in text
    assert "\n" not in text


def test_the_key_is_removed_even_unquoted() -> None:
    key = os.environ[KEY_VAR]
    text = scrubbed(RuntimeError(f"hashing with {key} failed"), [KEY_VAR])
    assert key not in text
    assert text == "RuntimeError: hashing with <secret> failed"


def test_config_errors_keep_their_names_and_data_errors_lose_values() -> None:
    config = ConfigError("conf/x.yaml: tags[0].rule (tag 'vip'): function reflect is not allowed")
    assert scrubbed(config) == str(config)
    data = DataQualityError("delivery d1 of source 'web' blocked")
    assert scrubbed(data) == f"delivery d1 of source {REDACTED} blocked"


def test_a_failed_run_records_a_scrubbed_error(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    ctx = RunContext(spark, make_settings())
    key = os.environ[KEY_VAR]
    day = dt.date(2026, 3, 1)
    steps = [("ingest", lambda: failing_cast(spark, f"{RAW_ID} {key}"))]
    with pytest.raises(Exception, match="CAST_INVALID_INPUT"):
        _recorded(ctx, day, steps)
    runs = tables.read(spark, ctx.table("pipeline_runs")).where(F.col("as_of") == day)
    [run] = runs.collect()
    assert run["status"] == FAILED
    assert run["error"].startswith("NumberFormatException: [CAST_INVALID_INPUT]")
    assert RAW_ID not in run["error"]
    assert key not in run["error"]


def test_a_full_disk_deep_in_the_cause_chain_is_said_plainly() -> None:
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as disk:
            raise RuntimeError("An error occurred while calling o81.save.") from disk
    except RuntimeError as caught:
        text = scrubbed(caught)
    assert text.startswith("the storage is full (No space left on device): free space; ")
    assert text.endswith("run the same command again")


def test_a_concurrent_delta_write_names_the_other_run() -> None:
    error = RuntimeError(
        "[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to partition "
        "[snapshot_date=2026-03-02] by a concurrent update."
    )
    assert scrubbed(error).startswith(
        "another run wrote the same table at the same time (ConcurrentAppendException); "
    )
    # A user's own error is never reworded, whatever its text.
    assert scrubbed(DataQualityError("Read-only file system")) == "Read-only file system"
