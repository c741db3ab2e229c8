"""`userprofile ingest`: landing files -> bronze (+ quarantine) -> silver, exactly once per file.

Event files are read by Structured Streaming's file source with
``trigger(availableNow=True)``: its checkpoint remembers which files were
processed, so a re-run picks up only new files. Each micro-batch appends to
bronze and quarantine with Delta's idempotent writes (``txnAppId`` +
``txnVersion`` = batch id), so a batch replayed after a crash is not written
twice; silver is an insert-only MERGE on ``event_id``, which is idempotent too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile import tables
from userprofile.config import pseudonym_key
from userprofile.errors import DataQualityError
from userprofile.ingest import (
    RAW_USERS_SCHEMA,
    parse_event_lines,
    to_bronze,
    to_quarantine,
    to_silver_events,
    to_silver_users,
    with_reject_reason,
)
from userprofile.steps.common import RunContext, StepReport, Stopwatch


@dataclass
class IngestCounts:
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.accepted + sum(self.rejected.values())


def run_ingest(ctx: RunContext) -> StepReport:
    clock = Stopwatch()
    key = pseudonym_key(ctx.settings)
    counts = _ingest_events(ctx, key)
    users = _ingest_users(ctx, key)
    report = StepReport("ingest", seconds=clock.seconds())
    report.rows.update({"events accepted": counts.accepted, "crm users read": users})
    for code, n in sorted(counts.rejected.items()):
        report.rows[f"quarantined {code}"] = n
    _check_reject_share(counts, ctx.settings.ingest.max_reject_share)
    return report


def _ingest_events(ctx: RunContext, key: bytes) -> IngestCounts:
    settings = ctx.settings
    source_dir = os.path.join(settings.storage.landing, "events")
    counts = IngestCounts()
    if not os.path.isdir(source_dir) and "://" not in source_dir:
        return counts
    lines = (
        ctx.spark.readStream.format("text")
        .option("maxFilesPerTrigger", settings.ingest.max_files_per_batch)
        .option("recursiveFileLookup", "true")
        .load(source_dir)
        .select("value", F.col("_metadata.file_path").alias("_source_file"))
    )
    bronze, quarantine, silver = (
        ctx.table("bronze_events"),
        ctx.table("bronze_quarantine"),
        ctx.table("silver_events"),
    )
    app_id = f"userprofile-ingest-events:{bronze}"

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        classified = (
            parse_event_lines(batch)
            .transform(with_reject_reason(settings.ingest.future_tolerance_hours))
            .cache()
        )
        accepted = to_bronze(classified)
        tables.append(accepted, bronze, ["event_date"], txn=(app_id, batch_id))
        tables.append(
            to_quarantine(classified, "events"),
            quarantine,
            ["ingest_date"],
            txn=(app_id + ":quarantine", batch_id),
        )
        new_events = accepted.transform(to_silver_events(key))
        tables.merge_insert_new(
            ctx.spark, new_events, silver, ["event_date", "event_id"], ["event_date"]
        )
        for row in classified.groupBy("reason_code").count().collect():  # one row per reason
            if row["reason_code"] is None:
                counts.accepted += row["count"]
            else:
                counts.rejected[row["reason_code"]] = (
                    counts.rejected.get(row["reason_code"], 0) + row["count"]
                )
        classified.unpersist()

    checkpoint = os.path.join(settings.storage.checkpoints, "ingest_events")
    query = (
        lines.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return counts


def _ingest_users(ctx: RunContext, key: bytes) -> int:
    source_dir = os.path.join(ctx.settings.storage.landing, "users")
    if not os.path.isdir(source_dir) and "://" not in source_dir:
        return 0
    crm = (
        ctx.spark.read.schema(RAW_USERS_SCHEMA)
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .csv(source_dir)
        .withColumn("_source_file", F.col("_metadata.file_path"))
    )
    users = crm.transform(to_silver_users(key)).cache()
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
