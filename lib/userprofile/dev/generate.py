"""`userprofile generate`: write synthetic raw logs into the landing folder."""

from __future__ import annotations

from userprofile.dev.generator import crm_users, generate_events, generate_users, ground_truth
from userprofile.ingest.privacy import remove_sample_marker, write_sample_marker
from userprofile.io import locations, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch


def landing_has_events(ctx: RunContext) -> bool:
    """Whether the landing folder (any file system) already has generated event files."""
    events = locations.join(ctx.settings.storage.landing, "events")
    return tables.path_exists(ctx.spark, events) and not ctx.spark.read.text(events).isEmpty()


def run_generate(ctx: RunContext, skip_existing: bool = False) -> StepReport:
    clock = Stopwatch()
    storage, cfg = ctx.settings.storage, ctx.settings.generator
    report = StepReport("generate")
    if skip_existing and landing_has_events(ctx):
        report.rows["skipped"] = f"events already in {storage.landing}/events"
        return report
    remove_sample_marker(storage.landing)
    users = generate_users(ctx.spark, cfg).cache()
    events = generate_events(users, cfg)
    (
        events.repartition("landing_date")
        .write.mode("overwrite")
        .partitionBy("landing_date")
        .text(locations.join(storage.landing, "events"))
    )
    crm_users(users).coalesce(1).write.mode("overwrite").option("header", "true").csv(
        locations.join(storage.landing, "users")
    )
    truth = locations.join(storage.ground_truth, "users")
    ground_truth(users).write.mode("overwrite").parquet(truth)
    users.unpersist()
    # The demo key is accepted only on exactly these files (ingest/privacy.py).
    write_sample_marker(storage.landing, ("events", "users"))
    written = locations.join(storage.landing, "events")
    report.rows["raw_lines"] = ctx.spark.read.text(written).count()
    report.rows["users"] = cfg.users
    report.rows["days"] = cfg.days
    report.rows["landing"] = storage.landing
    report.seconds = clock.seconds()
    return report
