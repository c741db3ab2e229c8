"""`userprofile ingest`: landing files -> bronze (+ quarantine) -> silver, exactly once per file.

Each configured source is read by Structured Streaming's file source with
``trigger(availableNow=True)``: its checkpoint remembers which files were
processed, so a re-run picks up only new files. Every micro-batch appends to
bronze, quarantine and the ingest log with Delta's idempotent writes
(``txnAppId`` + ``txnVersion`` = batch id): a batch replayed after a crash is
not written twice. Silver and the identity map are insert-only MERGEs on
their keys, idempotent too. The app id includes an id stored in the
checkpoint, so a deleted checkpoint starts a new series instead of having its
batches skipped as "already written".
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import EventSource
from userprofile.errors import DataQualityError
from userprofile.ingest.identity import new_identities
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym_key
from userprofile.ingest.records import classify, to_bronze, to_quarantine
from userprofile.ingest.silver import RAW_USERS_SCHEMA, to_silver_events, to_silver_users
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch

INGEST_LOG_SCHEMA = (
    "run_id string, source string, batch_id long, accepted long, quarantined long, "
    "suppressed long, changed_dates array<date>, logged_at timestamp"
)


@dataclass
class IngestCounts:
    accepted: int = 0
    suppressed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    changed_dates: set[dt.date] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.accepted + sum(self.rejected.values())


def landing_path(ctx: RunContext, path: str) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.join(ctx.settings.storage.landing, path)


def run_ingest(ctx: RunContext) -> StepReport:
    clock = Stopwatch()
    key = pseudonym_key(ctx.settings)
    counts = IngestCounts()
    for name, source in ctx.settings.ingest.sources.items():
        if source.enabled:
            _ingest_source(ctx, key, name, source, counts)
    users = _ingest_users(ctx, key)
    report = StepReport(
        "ingest",
        seconds=clock.seconds(),
        rows_in=counts.total + counts.suppressed,
        rows_out=counts.accepted,
        quarantined=sum(counts.rejected.values()),
    )
    report.rows.update({"events accepted": counts.accepted, "crm users read": users})
    if counts.suppressed:
        report.rows["dropped (erased users)"] = counts.suppressed
    for code, n in sorted(counts.rejected.items()):
        report.rows[f"quarantined {code}"] = n
    if counts.changed_dates:
        report.rows["event dates changed"] = describe_dates(counts.changed_dates)
    _check_reject_share(counts, ctx.settings.ingest.max_reject_share)
    return report


def describe_dates(dates: set[dt.date]) -> str:
    """'2026-01-03' or '2026-01-01 .. 2026-04-30 (120 dates)': where to recompute from."""
    first, last = min(dates), max(dates)
    if first == last:
        return first.isoformat()
    return f"{first} .. {last} ({len(dates)} dates)"


def _ingest_source(
    ctx: RunContext, key: bytes, name: str, source: EventSource, counts: IngestCounts
) -> None:
    settings = ctx.settings
    folder = landing_path(ctx, source.path)
    if not tables.path_exists(ctx.spark, folder):
        return
    checkpoint = os.path.join(settings.storage.checkpoints, "ingest", name)
    app_id = f"userprofile-ingest:{name}:{checkpoint_identity(ctx.spark, checkpoint)}"
    lines = (
        ctx.spark.readStream.format("text")
        .option("maxFilesPerTrigger", settings.ingest.max_files_per_batch)
        .option("recursiveFileLookup", "true")
        # Spark ignores files older than a week (by mtime) after the first batch unless told.
        .option("maxFileAge", "36500d")
        .load(folder)
        .select(
            "value",
            F.col("_metadata.file_path").alias("_source_file"),
            F.col("_metadata.file_modification_time").alias("_file_time"),
        )
    )
    classify_lines = classify(
        source, settings.ingest.future_tolerance_hours, settings.ingest.max_price
    )

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        all_rows = batch.transform(classify_lines).cache()
        classified, erasures_apply = _without_erased_users(ctx, key, all_rows)
        accepted = to_bronze(classified, name)
        txn = (app_id, batch_id)
        tables.append(accepted, ctx.table("bronze_events"), ["event_date"], txn=txn)
        tables.append(
            to_quarantine(classified, name, key),
            ctx.table("bronze_quarantine"),
            ["ingest_date"],
            txn=txn,
        )
        # Cached: merged into silver and read again for the identity map.
        silver = accepted.transform(
            to_silver_events(key, settings.ingest.session_gap_minutes)
        ).cache()
        tables.merge_insert_new(
            ctx.spark,
            silver,
            ctx.table("silver_events"),
            ["event_date", "source", "event_id"],
            ["event_date"],
        )
        tables.merge_insert_new(
            ctx.spark, new_identities(silver), ctx.table("silver_identities"), ["anonymous_key"]
        )
        batch_counts = _batch_counts(classified)
        suppressed = all_rows.count() - sum(batch_counts.values()) if erasures_apply else 0
        dates = sorted(r["event_date"] for r in accepted.select("event_date").distinct().collect())
        log = ctx.spark.createDataFrame(
            [
                (
                    ctx.run_id,
                    name,
                    batch_id,
                    batch_counts.get(None, 0),
                    sum(n for code, n in batch_counts.items() if code),
                    suppressed,
                    dates,
                    dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                )
            ],
            INGEST_LOG_SCHEMA,
        )
        tables.append(log, ctx.table("ingest_log"), txn=txn)
        silver.unpersist()
        all_rows.unpersist()
        counts.accepted += batch_counts.pop(None, 0)
        counts.rejected.update({str(code): n for code, n in batch_counts.items()})
        counts.suppressed += suppressed
        counts.changed_dates.update(dates)

    query = (
        lines.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


def _batch_counts(classified: DataFrame) -> Counter[str | None]:
    # One row per reason code (null = accepted): a handful of rows to the driver.
    rows = classified.groupBy("reason_code").count().collect()
    return Counter({r["reason_code"]: int(r["count"]) for r in rows})


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


def _check_reject_share(counts: IngestCounts, max_share: float) -> None:
    if counts.total == 0:
        return
    share = sum(counts.rejected.values()) / counts.total
    if share > max_share:
        raise DataQualityError(
            f"{share:.1%} of {counts.total} event records were quarantined this run "
            f"(limit ingest.max_reject_share = {max_share:.1%}); see the quarantine table"
        )
