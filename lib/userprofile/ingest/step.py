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
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import EventSource, Settings
from userprofile.ingest.counts import BatchCounts, IngestCounts, check_reject_share
from userprofile.ingest.identity import new_identities
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym_key
from userprofile.ingest.records import classify, to_bronze, to_quarantine
from userprofile.ingest.silver import RAW_USERS_SCHEMA, to_silver_events, to_silver_users
from userprofile.io import locations, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch

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
# Silver's key: one row per event of a source.
SILVER_KEY = ["event_date", "source", "event_id"]


def landing_path(ctx: RunContext, path: str) -> str:
    return locations.join(ctx.settings.storage.landing, path)


def run_ingest(ctx: RunContext) -> StepReport:
    clock = Stopwatch()
    key = pseudonym_key(ctx.settings)
    counts = IngestCounts()
    for name, source in ctx.settings.ingest.sources.items():
        if source.enabled:
            _ingest_source(ctx, key, name, source, counts)
    users = _ingest_users(ctx, key)
    report = counts.step_report("ingest", clock.seconds(), {"crm users read": users})
    if counts.rejected_share() > ctx.settings.ingest.max_reject_share:
        counts.samples.update(quarantined_samples(ctx))
    check_reject_share(counts, ctx.settings.ingest.max_reject_share)
    return report


def quarantined_samples(ctx: RunContext) -> dict[str, str]:
    """One rejected line per reason code among this run's quarantined rows."""
    rows = (
        ctx.read("bronze_quarantine")
        .where(F.col("run_id") == ctx.run_id)
        .groupBy("reason_code")
        .agg(F.first("raw_record", ignorenulls=True).alias("sample"))
        .collect()  # one row per reason code
    )
    return {str(r["reason_code"]): str(r["sample"]) for r in rows if r["sample"] is not None}


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
    key: bytes
    name: str
    source: EventSource
    app_id: str
    attempt: str

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        ctx = RunContext(batch.sparkSession, self.settings, self.run_id)
        ingest = self.settings.ingest
        classify_lines = classify(self.source, ingest.future_tolerance_hours, ingest.max_price)
        txn = (self.app_id, batch_id)
        written = write_classified(ctx, self.key, self.name, batch.transform(classify_lines), txn)
        append_log(ctx, self.name, written, txn, "ingest", self.attempt, batch_id=batch_id)


def _ingest_source(
    ctx: RunContext, key: bytes, name: str, source: EventSource, counts: IngestCounts
) -> None:
    settings = ctx.settings
    folder = landing_path(ctx, source.path)
    if not tables.path_exists(ctx.spark, folder):
        return
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
    query.awaitTermination()
    for batch in logged_batches(ctx, attempt):
        counts.add(batch)


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
            {},
            int(r["suppressed"]),
            list(r["changed_dates"] or []),
            int(r["files"] or 0),
        )
        for r in rows
    ]


def write_classified(
    ctx: RunContext, key: bytes, name: str, classified: DataFrame, txn: tuple[str, int]
) -> BatchCounts:
    """Classified lines of source ``name`` -> bronze, quarantine, silver and the identity map.

    Bronze and quarantine are appended with Delta's idempotent writes (``txn``: a
    repeated write with the same app id and version is skipped); silver and the
    identity map are insert-only MERGEs on their keys. Erased users are dropped first.
    """
    settings = ctx.settings
    all_rows = classified.cache()
    kept, erasures_apply = _without_erased_users(ctx, key, all_rows)
    accepted = to_bronze(kept, name)
    # add_columns: tables written before a release added an event field gain it.
    tables.append(accepted, ctx.table("bronze_events"), ["event_date"], txn=txn, add_columns=True)
    # run_id: the over-limit error finds its sample lines by it; older tables gain it.
    quarantined = to_quarantine(kept, name, key).withColumn("run_id", F.lit(ctx.run_id))
    tables.append(
        quarantined, ctx.table("bronze_quarantine"), ["ingest_date"], txn=txn, add_columns=True
    )
    # Cached: merged into silver and read again for the identity map.
    silver = accepted.transform(to_silver_events(key, settings.ingest.session_gap_minutes)).cache()
    tables.merge_insert_new(
        ctx.spark, silver, ctx.table("silver_events"), SILVER_KEY, ["event_date"], add_columns=True
    )
    tables.merge_insert_new(
        ctx.spark, new_identities(silver), ctx.table("silver_identities"), ["anonymous_key"]
    )
    by_reason, samples, files = _batch_counts(kept)
    suppressed = all_rows.count() - sum(by_reason.values()) if erasures_apply else 0
    dates = sorted(r["event_date"] for r in accepted.select("event_date").distinct().collect())
    silver.unpersist()
    all_rows.unpersist()
    return BatchCounts(by_reason, samples, suppressed, dates, files)


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


def _batch_counts(classified: DataFrame) -> tuple[Counter[str | None], dict[str, str], int]:
    """Rows per reason code (null = accepted), one rejected line per code, files with rows."""
    # One row per reason code: a handful of rows (and the batch's file names) to the driver.
    rows = (
        classified.groupBy("reason_code")
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.first("raw_record", ignorenulls=True).alias("sample"),
            F.collect_set("_source_file").alias("files"),
        )
        .collect()
    )
    counts = Counter({r["reason_code"]: int(r["count"]) for r in rows})
    samples = {r["reason_code"]: str(r["sample"]) for r in rows if r["reason_code"] and r["sample"]}
    files = len({f for r in rows for f in r["files"]})
    return counts, samples, files


def _without_erased_users(
    ctx: RunContext, key: bytes, classified: DataFrame
) -> tuple[DataFrame, bool]:
    """Drop records of users on the erasure suppression list, so a replay cannot restore them."""
    ref = ctx.table("erasure_suppression")
    if not tables.exists(ctx.spark, ref):
        return classified, False
    suppressed = tables.read(ctx.spark, ref)
    kept = classified
    # An erased user's id always; their anonymous ids only on rows without a user id.
    for raw_id, kind in (("user_id", "user"), ("anonymous_id", "anonymous")):
        erased = F.broadcast(
            suppressed.where(F.col("kind") == kind).select(F.col("key").alias("_erased"))
        )
        hashed = kept.withColumn("_key", hmac_sha256_hex(key, F.col(raw_id)))
        if kind == "anonymous":
            hashed = hashed.withColumn("_key", F.when(F.col("user_id").isNull(), F.col("_key")))
        kept = hashed.join(erased, hashed["_key"] == erased["_erased"], "left_anti").drop("_key")
    return kept, True


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
    users = crm.transform(to_silver_users(key))
    suppression = ctx.table("erasure_suppression")
    if tables.exists(ctx.spark, suppression):
        erased = tables.read(ctx.spark, suppression).select(F.col("key").alias("user_key"))
        users = users.join(erased, "user_key", "left_anti")
    users = users.cache()
    tables.merge_upsert(ctx.spark, users, ctx.table("silver_users"), ["user_key"])
    n = users.count()
    users.unpersist()
    return n
