"""Erasure removes a user from every layer, is audited, and a replay does not bring them back."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import shutil
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.helpers import TEST_KEY
from tests.ingest.raw_events import CASES, anonymous_view, event, write_landing
from userprofile.cli import build_parser
from userprofile.ingest.privacy import pseudonym as pseudonymous_key
from userprofile.ingest.step import run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.ops.erase import run_erase

KEY = TEST_KEY.encode()
LAYERS = (
    "bronze_events",
    "bronze_quarantine",
    "silver_events",
    "silver_user_day",
    "silver_identities",
    "user_features",
    "user_profile",
)


def landing_lines() -> list[str]:
    return [
        anonymous_view("u1-anon", "anon-u1"),
        event(event_id="u1-login", user_id="U1", anonymous_id="anon-u1"),
        event(event_id="u1-bad", user_id="U1", quantity=0),  # quarantined, mentions U1
        event(event_id="u2", user_id="U2", anonymous_id="anon-u2"),
        event(event_id="u10", user_id="U10", anonymous_id="anon-u10"),  # not U1
        # Someone else later logs in on U1's device: their rows are theirs.
        event(
            event_id="u3-shared",
            user_id="U3",
            anonymous_id="anon-u1",
            event_ts="2026-01-06T10:00:00Z",
        ),
        CASES["MALFORMED_RECORD"],
    ]


def write_gold(spark: SparkSession, ctx: RunContext) -> None:
    """Minimal gold tables keyed like the real ones (features and profile by user_key)."""
    keys = [(pseudonymous_key(KEY, u), dt.date(2026, 2, 1)) for u in ("U1", "U2", "U10")]
    for table in ("user_features", "user_profile"):
        rows = spark.createDataFrame(keys, "user_key string, snapshot_date date")
        tables.append(rows, ctx.table(table), ["snapshot_date"])


def rows_of_u1(spark: SparkSession, ctx: RunContext) -> dict[str, int]:
    u1, anon = pseudonymous_key(KEY, "U1"), pseudonymous_key(KEY, "anon-u1")
    u3 = pseudonymous_key(KEY, "U3")
    found = {}
    for table in LAYERS:
        frame = tables.read(spark, ctx.table(table))
        text = F.concat_ws("|", *[F.col(c).cast("string") for c in frame.columns])
        u3_rows = text.contains(u3) | text.rlike(r'(^|\|)U3(\||$)|"U3"')
        found[table] = (
            frame.where(~u3_rows)
            .where(
                text.contains(u1)
                | text.contains(anon)
                | text.rlike(r'(^|\|)(U1|anon-u1)(\||$)|"U1"|"anon-u1"')
            )
            .count()
        )
    return found


def test_erase_everywhere_and_keep_out(spark: SparkSession, make_settings: SettingsFactory) -> None:
    settings = make_settings(ingest={"max_reject_share": 1.0})
    write_landing(Path(settings.storage.landing), "a.json", landing_lines())
    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    write_gold(spark, ctx)
    before = rows_of_u1(spark, ctx)
    assert all(before[t] > 0 for t in LAYERS), before

    args = build_parser().parse_args(
        ["erase", "--user-id", "U1", "--vacuum", "--vacuum-hours", "0"]
    )
    assert (args.user_id, args.vacuum, args.vacuum_hours) == (["U1"], True, 0)
    report = run_erase(ctx, ["U1"], vacuum_hours=0)
    assert report.rows["deleted from bronze_events"] == 2  # the login and the anonymous view
    assert report.rows["deleted from bronze_quarantine"] == 1
    assert rows_of_u1(spark, ctx) == dict.fromkeys(LAYERS, 0)

    # Others are untouched, including U10, whose id contains "U1".
    kept = spark.createDataFrame([("u2",), ("u10",), ("u3-shared",)], "event_id string")
    assert_df_equality(
        tables.read(spark, ctx.table("bronze_events")).select("event_id"),
        kept,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert tables.read(spark, ctx.table("user_profile")).count() == 2

    # Vacuumed: no data file left under bronze holds U1, not even for time travel.
    leftovers = spark.read.parquet(str(ctx.table("bronze_events").path)).where("user_id = 'U1'")
    assert leftovers.count() == 0

    # Audited with pseudonymous keys only.
    audit = tables.read(spark, ctx.table("erasure_requests"))
    u1_key = hmac.new(KEY, b"U1", hashlib.sha256).hexdigest()  # Python's HMAC as reference
    assert_df_equality(
        audit.select("user_keys", "vacuumed"),
        spark.createDataFrame([([u1_key], True)], "user_keys array<string>, vacuumed boolean"),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert all("U1" not in str(row.asDict()) for row in audit.collect())

    # Replaying every landing file from scratch does not resurrect U1.
    shutil.rmtree(settings.storage.checkpoints)
    replay = run_ingest(ctx)
    assert replay.rows["dropped (erased users)"] == 3
    assert rows_of_u1(spark, ctx)["silver_events"] == 0
    assert rows_of_u1(spark, ctx)["bronze_events"] == 0
    assert rows_of_u1(spark, ctx)["bronze_quarantine"] == 0
    silver_ids = {r.event_id for r in tables.read(spark, ctx.table("silver_events")).collect()}
    assert {"u2", "u10", "u3-shared"} <= silver_ids
