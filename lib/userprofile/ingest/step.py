"""`userprofile ingest`: landing files -> bronze (+ quarantine) -> silver, exactly once per file.

Each configured source is read by Structured Streaming's file source with
``trigger(availableNow=True)``: its checkpoint remembers which files were
processed, so a re-run picks up only new files. Every micro-batch appends to
bronze, quarantine and the ingest log with Delta's idempotent writes
(``txnAppId`` + ``txnVersion`` = batch id): a batch replayed after a crash is
not written twice. Silver and the identity map are insert-only MERGEs on
their keys, idempotent too. The app id includes an id stored in the
checkpoint, so a deleted checkpoint starts a new series instead of having its
batches skipped as "already written". ``write_classified`` is the write path of
both ingest and ``userprofile reprocess`` (``userprofile.ingest.reprocess``).

Before a batch writes anything, the data-quality gate (``userprofile.ingest.gate``)
may hold it back: the query then fails, the checkpoint does not commit the batch,
and ``run_ingest`` raises a ``DataQualityError`` naming the delivery. After its
writes, a batch removes what it wrote of users erased meanwhile
(``userprofile.ingest.erasures``).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import EventSource, Settings
from userprofile.errors import DataQualityError
from userprofile.ingest.counts import BatchCounts, IngestCounts, Tally, tally
from userprofile.ingest.erasures import (
    erased_in,
    erased_user_keys,
    remove_erased_meanwhile,
    remove_users_erased_meanwhile,
    without,
    without_user_keys,
)
from userprofile.ingest.gate import blocked_error, hold_if_over_limit, unreadable_error
from userprofile.ingest.identity import new_identities
from userprofile.ingest.privacy import RAW_COLUMNS, pseudonym_key
from userprofile.ingest.records import classify, to_bronze, to_quarantine
from userprofile.ingest.silver import RAW_USERS_SCHEMA, to_silver_events, to_silver_users
from userprofile.ingest.user_days import MergedBatch, refresh_user_days, silver_before
from userprofile.io import locations, table_stats, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch
from userprofile.io.faults import kill_point
from userprofile.io.pruning import DateWindow
from userprofile.io.session import shuffle_sized_for

# command: 'ingest' (batch_id = the stream's batch) or 'reprocess' (no batch_id; rows it
# removed in *_removed); null on rows logged before the column was added.
# quarantined_by_reason: the quarantined count per reason code; attempt: one id per ingest or
# reprocess call (a run may ingest more than once, e.g. from a notebook). Null on older rows.
INGEST_LOG_SCHEMA = (
    "run_id string, source string, batch_id long, accepted long, quarantined long, "
    "suppressed long, changed_dates array<date>, logged_at timestamp, "
    "command string, files long, accepted_removed long, quarantined_removed long, "
    "quarantined_by_reason map<string,bigint>, attempt string"
)
# Silver's key: one row per event of a source (matched within `resend_window_days` of its
# date: ``DateWindow``).
SILVER_KEY = ["source", "event_id"]
# Tests only: a batch waits, after reading the suppression list and before writing, until
# the file this names exists (it creates `<file>.reached` first). Production never sets it.
PAUSE_ENV = "USERPROFILE_TEST_PAUSE_BATCH"
PAUSE_MAX_SECONDS = 120


def landing_path(ctx: RunContext, path: str) -> str:
    return locations.join(ctx.settings.storage.landing, path)


def run_ingest(ctx: RunContext) -> StepReport:
    clock = Stopwatch()
    key = pseudonym_key(ctx.settings)
    counts = IngestCounts()
    blocked: list[DataQualityError] = []
    for name, source in ctx.settings.ingest.sources.items():
        if source.enabled:
            error = _ingest_source(ctx, key, name, source, counts)
            blocked += [error] if error is not None else []
    users = _ingest_users(ctx, key)
    if blocked:  # the other sources and the CRM users are in; the run still fails
        raise DataQualityError(" | ".join(str(e) for e in blocked))
    return counts.step_report("ingest", clock.seconds(), {"crm users read": users})


def with_lineage(lines: DataFrame) -> DataFrame:
    """Lines of the text source -> (value, _source_file, _file_time): each line's file and mtime."""
    return lines.select(
        "value",
        F.col("_metadata.file_path").alias("_source_file"),
        F.col("_metadata.file_modification_time").alias("_file_time"),
    )


@dataclass(frozen=True)
class BatchWriter:
    """Writes one micro-batch of a source: classify, then ``write_classified`` and a log row.

    Only plain values travel with it: over Spark Connect, foreachBatch runs it in a
    Python process beside the server, so it takes its session from the batch and
    reports through the tables it writes (the ingest log), not through driver state.
    """

    settings: Settings
    run_id: str
    key: bytes = field(repr=False)
    name: str
    source: EventSource
    app_id: str
    attempt: str

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        ctx = RunContext(batch.sparkSession, self.settings, self.run_id)
        ingest = self.settings.ingest
        classify_lines = classify(self.source, ingest.future_tolerance_hours, ingest.max_price)
        txn = (self.app_id, batch_id)
        gate = partial(hold_if_over_limit, ctx, self.name, self.attempt)
        classified = batch.transform(classify_lines)
        written = write_classified(ctx, self.key, self.name, classified, txn, gate)
        append_log(ctx, self.name, written, txn, "ingest", self.attempt, batch_id=batch_id)
        kill_point("ingest.before_checkpoint_commit")


def _ingest_source(
    ctx: RunContext, key: bytes, name: str, source: EventSource, counts: IngestCounts
) -> DataQualityError | None:
    """Ingest a source's new files; the error naming its delivery if the gate held one."""
    settings = ctx.settings
    folder = landing_path(ctx, source.path)
    if not tables.path_exists(ctx.spark, folder):
        return None
    checkpoint = locations.join(settings.storage.checkpoints, f"ingest/{name}")
    app_id = f"userprofile-ingest:{name}:{checkpoint_identity(ctx.spark, checkpoint)}"
    attempt = uuid.uuid4().hex[:12]
    write_batch = BatchWriter(settings, ctx.run_id, key, name, source, app_id, attempt)
    lines = (
        ctx.spark.readStream.format("text")
        .option("maxFilesPerTrigger", settings.ingest.max_files_per_batch)
        .option("recursiveFileLookup", "true")
        # Spark ignores files older than a week (by mtime) after the first batch unless told.
        .option("maxFileAge", "36500d")
        .load(folder)
        .transform(with_lineage)
    )
    query = (
        lines.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as error:
        # The batch's own error comes wrapped in Spark's; the gate left its record in a table.
        held = blocked_error(ctx, name, attempt) or unreadable_error(error, name)
        if held is None:
            raise
        return held
    kill_point("ingest.after_checkpoint_commit")
    for batch in logged_batches(ctx, attempt):
        counts.add(batch)
    return None


def logged_batches(ctx: RunContext, attempt: str) -> list[BatchCounts]:
    """What the batches of one ingest call wrote, as their ingest log rows tell."""
    ref = ctx.table("ingest_log")
    if not tables.exists(ctx.spark, ref):
        return []
    rows = (
        tables.read(ctx.spark, ref)
        .where(F.col("attempt") == attempt)
        .collect()  # one row per micro-batch of the call
    )
    return [
        BatchCounts(
            Counter({None: int(r["accepted"]), **(r["quarantined_by_reason"] or {})}),
            int(r["suppressed"]),
            list(r["changed_dates"] or []),
            int(r["files"] or 0),
        )
        for r in rows
    ]


def write_classified(
    ctx: RunContext,
    key: bytes,
    name: str,
    classified: DataFrame,
    txn: tuple[str, int],
    gate: Callable[[Tally], None] | None = None,
) -> BatchCounts:
    """Classified lines of source ``name`` -> bronze, quarantine, silver and the identity map.

    ``gate`` sees the counts first and may raise: then nothing is written. Erased users
    are dropped; bronze and quarantine are appended with Delta's idempotent writes
    (``txn``: a repeated write with the same app id and version is skipped); silver and
    the identity map are insert-only MERGEs on their keys. Users erased while this ran
    are then removed again.
    """
    all_rows = classified.cache()
    counted = tally(all_rows)
    if gate is not None:
        gate(counted)
    with shuffle_sized_for(ctx.spark, counted.rows):
        written, dates = _write_kept(ctx, key, name, all_rows, txn, counted)
    all_rows.unpersist()
    suppressed = counted.rows - written.rows
    return BatchCounts(written.by_reason, suppressed, dates, len(written.files))


def _write_kept(
    ctx: RunContext,
    key: bytes,
    name: str,
    all_rows: DataFrame,
    txn: tuple[str, int],
    counted: Tally,
) -> tuple[Tally, list[dt.date]]:
    """``write_classified`` once the gate has passed: its counts and the dates it touched."""
    # Read once: every write below leaves out the same ids.
    erased = erased_in(ctx, key, all_rows)
    kept = without(all_rows, erased)
    written = tally(kept) if erased else counted
    _pause_for_tests()
    accepted = to_bronze(kept, name)
    _append_raw(ctx, "bronze_events", accepted, ["event_date"], txn)
    kill_point("ingest.after_bronze")
    # run_id: which run quarantined a row; older tables gain it.
    quarantined = to_quarantine(kept, name, key).withColumn("run_id", F.lit(ctx.run_id))
    _append_raw(ctx, "bronze_quarantine", quarantined, ["ingest_date"], txn)
    kill_point("ingest.after_quarantine")
    dates = sorted(r["event_date"] for r in accepted.select("event_date").distinct().collect())
    # Cached: merged into silver, read again for the identity map and the roll-up.
    gap = ctx.settings.ingest.session_gap_minutes
    silver = accepted.transform(to_silver_events(key, gap)).cache()
    new_dates, first = silver_before(ctx, dates)
    inserted = tables.merge_insert_new(
        ctx.spark,
        silver,
        ctx.table("silver_events"),
        SILVER_KEY,
        ["event_date"],
        add_columns=True,
        within=DateWindow("event_date", dates, ctx.settings.ingest.resend_window_days),
    )
    kill_point("ingest.after_silver")
    # Every row inserted: silver's rows of a date new to it are the batch's rows of it.
    whole = inserted is None or inserted == silver.count()
    merged = MergedBatch(silver, new_dates if whole else frozenset(), first)
    tables.merge_insert_new(
        ctx.spark, new_identities(silver), ctx.table("silver_identities"), ["anonymous_key"]
    )
    kill_point("ingest.after_identities")
    refresh_user_days(ctx, dates, merged)
    kill_point("ingest.after_roll_up")
    remove_erased_meanwhile(ctx, key, all_rows, erased)
    silver.unpersist()
    return written, dates


def _pause_for_tests() -> None:
    """Wait while a test runs something between this batch's reads and writes (PAUSE_ENV)."""
    release = os.environ.get(PAUSE_ENV)
    if not release:
        return
    Path(f"{release}.reached").touch()
    deadline = time.monotonic() + PAUSE_MAX_SECONDS
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _append_raw(
    ctx: RunContext, table_key: str, rows: DataFrame, partition_by: list[str], txn: tuple[str, int]
) -> None:
    """Append to a bronze table, created (when new) without statistics of its raw id
    columns: Delta would copy their min/max values into its log, which erase cannot clean.
    add_columns: tables written before a release added an event field gain it."""
    ref = ctx.table(table_key)
    properties = table_stats.stats_properties(rows.schema, RAW_COLUMNS[table_key], partition_by)
    table_stats.create_if_missing(ctx.spark, ref, rows.schema, partition_by, properties)
    tables.append(rows, ref, partition_by, txn=txn, add_columns=True)


def append_log(
    ctx: RunContext,
    name: str,
    written: BatchCounts,
    txn: tuple[str, int],
    command: str,
    attempt: str,
    batch_id: int | None = None,
    removed: tuple[int, int] = (0, 0),
) -> None:
    """One ``ingest_log`` row; ``removed``: (bronze, quarantine) rows a reprocess replaced."""
    log = ctx.spark.createDataFrame(
        [
            (
                ctx.run_id,
                name,
                batch_id,
                written.by_reason.get(None, 0),
                sum(n for code, n in written.by_reason.items() if code),
                written.suppressed,
                written.dates,
                dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                command,
                written.files,
                *removed,
                {str(code): n for code, n in written.by_reason.items() if code},
                attempt,
            )
        ],
        INGEST_LOG_SCHEMA,
    )
    # add_columns: a log written before `command` and the counts after it gains them.
    tables.append(log, ctx.table("ingest_log"), txn=txn, add_columns=True)


def checkpoint_identity(spark: SparkSession, checkpoint: str) -> str:
    """A random id kept inside the checkpoint: new checkpoint, new id (any file system)."""
    marker = checkpoint.rstrip("/") + "/_userprofile_id"
    if tables.path_exists(spark, marker):
        row = spark.read.text(marker).first()
        if row is not None:
            return str(row[0])
    identity = uuid.uuid4().hex
    spark.createDataFrame([(identity,)], "value string").coalesce(1).write.mode("overwrite").text(
        marker
    )
    return identity


def _ingest_users(ctx: RunContext, key: bytes) -> int:
    folder = landing_path(ctx, ctx.settings.ingest.users_path)
    if not tables.path_exists(ctx.spark, folder):
        return 0
    crm = (
        ctx.spark.read.schema(RAW_USERS_SCHEMA)
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .csv(folder)
        .withColumn("_source_file", F.col("_metadata.file_path"))
    )
    users = crm.transform(to_silver_users(key)).cache()
    erased = erased_user_keys(ctx, users)
    kept = without_user_keys(users, erased)
    tables.merge_upsert(ctx.spark, kept, ctx.table("silver_users"), ["user_key"])
    remove_users_erased_meanwhile(ctx, users, erased)
    n = kept.count()
    users.unpersist()
    return n
