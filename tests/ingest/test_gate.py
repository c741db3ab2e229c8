"""The data-quality gate holds an over-limit delivery back, unwritten, until its files are
fixed or an operator releases it; and a user erased while a batch runs stays erased."""

from __future__ import annotations

import getpass
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.helpers import TEST_KEY
from tests.ingest.raw_events import anonymous_view, event, write_landing
from userprofile.cli import main
from userprofile.errors import DataQualityError
from userprofile.ingest.counts import Tally
from userprofile.ingest.gate import delivery_id, over_limit
from userprofile.ingest.privacy import pseudonym as pseudonymous_key
from userprofile.ingest.step import PAUSE_ENV, run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.ops.erase import run_erase

WRITTEN = (
    "bronze_events",
    "bronze_quarantine",
    "silver_events",
    "silver_user_day",
    "silver_identities",
)
KEY = TEST_KEY.encode()

MIN_ROWS = 100  # ingest.reject_share_min_rows, as conf/base.yaml sets it


def delivery(name: str, good: int, bad: int) -> list[str]:
    """``good`` valid events and ``bad`` rejected ones: two BAD_QUANTITY to each NEGATIVE_PRICE."""
    lines = [event(event_id=f"{name}{i}", user_id=f"U{i % 5}") for i in range(good)]
    for i in range(bad):
        broken = {"quantity": 0} if i % 3 else {"price": -3.0}
        lines.append(event(event_id=f"{name}-bad{i}", **broken))
    return lines


def land(landing: Path, name: str, lines: list[str], mtime: float) -> Path:
    """A landing file with a given modification time: the stream takes older files first."""
    write_landing(landing, name, lines)
    path = landing / "events" / "landing_date=2026-01-05" / name
    os.utime(path, (mtime, mtime))
    return path


def state(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    """Each written table's rows (sorted) and Delta version: equal states, no commits between."""
    found: dict[str, Any] = {}
    for key in WRITTEN:
        ref = ctx.table(key)
        frame = tables.read(spark, ref).drop("_ingested_at", "ingest_date", "run_id")
        version = spark.sql(f"DESCRIBE HISTORY {tables.sql_name(ref)} LIMIT 1").first()
        found[key] = (sorted(map(repr, frame.collect())), version and version["version"])
    return found


def event_ids(spark: SparkSession, ctx: RunContext, key: str) -> set[str]:
    return {r["event_id"] for r in tables.read(spark, ctx.table(key)).collect()}


def test_the_limit_itself_passes_and_too_small_a_batch_is_never_held() -> None:
    at_limit = Tally(Counter({None: 95, "BAD_QUANTITY": 5}), ("a",))
    just_over = Tally(Counter({None: 94, "BAD_QUANTITY": 6}), ("a",))
    assert not over_limit(at_limit, 0.05, MIN_ROWS)
    assert over_limit(just_over, 0.05, MIN_ROWS)
    small = Tally(Counter({"MALFORMED_RECORD": MIN_ROWS - 1}), ("a",))
    assert not over_limit(small, 0.05, MIN_ROWS)
    assert over_limit(Tally(Counter({"MALFORMED_RECORD": MIN_ROWS}), ("a",)), 0.05, MIN_ROWS)


def test_a_delivery_id_depends_on_the_source_and_the_set_of_files() -> None:
    first = delivery_id("events", ["file:/l/b.json", "file:/l/a.json"])
    assert first == delivery_id("events", ["file:/l/a.json", "file:/l/b.json"])
    assert first != delivery_id("orders", ["file:/l/a.json", "file:/l/b.json"])
    assert first != delivery_id("events", ["file:/l/a.json"])
    assert len(first) == 16
    assert int(first, 16) >= 0


def test_an_over_limit_delivery_is_held_unwritten_until_its_files_are_fixed(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    # One file per batch: the first is exactly at the limit, the second just over it.
    settings = make_settings(ingest={"max_reject_share": 0.05, "max_files_per_batch": 1})
    landing = Path(settings.storage.landing)
    start = time.time() - 3600
    land(landing, "a.json", delivery("a", good=95, bad=5), start)
    held_file = land(landing, "b.json", delivery("b", good=94, bad=6), start + 60)

    ctx = RunContext(spark, settings)
    with pytest.raises(DataQualityError) as held:
        run_ingest(ctx)
    [block] = tables.read(spark, ctx.table("blocked_deliveries")).collect()
    assert [Path(f).name for f in block["files"]] == ["b.json"]
    assert block["delivery_id"] == delivery_id("events", block["files"])
    assert (block["rows"], block["rejected"]) == (100, {"BAD_QUANTITY": 4, "NEGATIVE_PRICE": 2})
    assert (block["source"], block["run_id"], block["max_share"]) == ("events", ctx.run_id, 0.05)
    message = str(held.value)
    assert message.startswith(
        f"ingest held back delivery {block['delivery_id']} of source events: 6 of 100 records "
        "rejected (6.0%, over ingest.max_reject_share = 5.0%); top reasons: BAD_QUANTITY 4, "
        f"NEGATIVE_PRICE 2; files: {block['files'][0]} (all in table "
    )
    assert message.endswith(f'userprofile release --delivery {block["delivery_id"]} --reason "WHY"')
    assert "\n" not in message
    assert "'" not in message  # nothing for errors.scrubbed to take for a value
    assert "b-bad" not in message  # no rejected line
    # The first file went in (its share is the limit itself); nothing of the second did.
    assert event_ids(spark, ctx, "bronze_events") == {f"a{i}" for i in range(95)}
    assert tables.read(spark, ctx.table("bronze_quarantine")).count() == 5
    before = state(spark, ctx)

    # The checkpoint did not move on: the next run reads the same file, finds the same id.
    again = RunContext(spark, settings)
    with pytest.raises(DataQualityError, match=block["delivery_id"]):
        run_ingest(again)
    assert state(spark, ctx) == before
    ids = tables.read(spark, ctx.table("blocked_deliveries")).select("delivery_id", "run_id")
    expected = spark.createDataFrame(
        [(block["delivery_id"], ctx.run_id), (block["delivery_id"], again.run_id)],
        "delivery_id string, run_id string",
    )
    assert_df_equality(ids, expected, ignore_row_order=True, ignore_nullable=True)

    # Fixed upstream under the same name: the replayed batch takes it.
    held_file.write_text("\n".join(delivery("b", good=100, bad=0)) + "\n")
    report = run_ingest(RunContext(spark, settings))
    assert report.rows["events accepted"] == 100
    expected_ids = {f"a{i}" for i in range(95)} | {f"b{i}" for i in range(100)}
    assert event_ids(spark, ctx, "bronze_events") == expected_ids
    assert event_ids(spark, ctx, "silver_events") == expected_ids
    assert tables.read(spark, ctx.table("bronze_quarantine")).count() == 5


def test_a_released_delivery_goes_in_with_its_rejects_quarantined(
    spark: SparkSession,
    make_settings: SettingsFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()  # the default limit, 5%
    conf = str(tmp_path / "test.yaml")  # what make_settings wrote
    write_landing(Path(settings.storage.landing), "c.json", delivery("c", good=70, bad=30))
    ctx = RunContext(spark, settings)

    assert main(["ingest", "--conf", conf]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    [block] = tables.read(spark, ctx.table("blocked_deliveries")).collect()
    held = block["delivery_id"]
    assert error.startswith(
        f"userprofile: error: ingest held back delivery {held} of source events"
    )
    assert "30 of 100 records rejected (30.0%, over ingest.max_reject_share = 5.0%)" in error
    assert not tables.exists(spark, ctx.table("bronze_events"))

    assert main(["release", "--conf", conf, "--delivery", "0123456789abcdef", "--reason", "x"]) == 1
    assert "no delivery 0123456789abcdef was held back" in capsys.readouterr().err
    reason = "vendor confirms: the test events of the new app have no quantity"
    assert main(["release", "--conf", conf, "--delivery", held, "--reason", reason]) == 0
    assert "run `userprofile ingest` again" in capsys.readouterr().out
    [release] = tables.read(spark, ctx.table("delivery_releases")).collect()
    assert (release["delivery_id"], release["reason"]) == (held, reason)
    assert release["released_by"] == getpass.getuser()
    assert release["run_id"] is not None  # the release command's own run
    assert release["released_at"] is not None

    assert main(["ingest", "--conf", conf]) == 0
    assert event_ids(spark, ctx, "bronze_events") == {f"c{i}" for i in range(70)}
    assert tables.read(spark, ctx.table("bronze_quarantine")).count() == 30
    assert tables.read(spark, ctx.table("blocked_deliveries")).count() == 1  # not held again


def erase_lines() -> list[str]:
    """U1 (a login, an anonymous view on the same device, a rejected line) and U2."""
    return [
        event(event_id="u1-login", user_id="U1", anonymous_id="anon-u1"),
        anonymous_view("u1-anon", "anon-u1"),
        event(event_id="u1-bad", user_id="U1", anonymous_id="anon-u1", quantity=0),
        event(event_id="u2", user_id="U2", anonymous_id="anon-u2"),
        event(event_id="u2-bad", user_id="U2", anonymous_id="anon-u2", quantity=0),
    ]


def wait_for(path: Path, worker: threading.Thread, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert worker.is_alive(), "the ingest ended before its batch paused"
        assert time.monotonic() < deadline, "the batch never paused"
        time.sleep(0.1)


def test_a_user_erased_while_a_batch_runs_is_in_no_table_after_it(
    spark: SparkSession,
    make_settings: SettingsFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings()
    ctx = RunContext(spark, settings)
    run_erase(ctx, ["U9"])  # an earlier erasure: the batch reads an existing suppression list
    write_landing(Path(settings.storage.landing), "a.json", erase_lines())
    release = tmp_path / "release-batch"
    monkeypatch.setenv(PAUSE_ENV, str(release))
    outcome: dict[str, Any] = {}

    def ingest() -> None:
        try:
            outcome["report"] = run_ingest(ctx)
        except BaseException as error:  # re-raised by the test below
            outcome["error"] = error

    worker = threading.Thread(target=ingest, name="ingest-under-test")
    worker.start()
    try:
        # The batch has read the suppression list (without U1) and waits before writing.
        wait_for(Path(f"{release}.reached"), worker)
        run_erase(RunContext(spark, settings), ["U1"])
    finally:
        release.touch()
        worker.join(timeout=600)
    assert not worker.is_alive()
    if "error" in outcome:
        raise outcome["error"]

    assert event_ids(spark, ctx, "bronze_events") == {"u2"}
    assert event_ids(spark, ctx, "silver_events") == {"u2"}
    u2, anon_u2 = pseudonymous_key(KEY, "U2"), pseudonymous_key(KEY, "anon-u2")
    quarantine = tables.read(spark, ctx.table("bronze_quarantine")).select("user_key")
    assert [r["user_key"] for r in quarantine.collect()] == [u2]
    identities = tables.read(spark, ctx.table("silver_identities")).select(
        "anonymous_key", "user_key"
    )
    assert [tuple(r) for r in identities.collect()] == [(anon_u2, u2)]
    # U1's device, linked by this batch, is kept out of later ingests as erase would have.
    suppressed = tables.read(spark, ctx.table("erasure_suppression"))
    anon_u1 = pseudonymous_key(KEY, "anon-u1")
    assert suppressed.where((F.col("key") == anon_u1) & (F.col("kind") == "anonymous")).count() == 1
