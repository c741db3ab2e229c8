"""`userprofile generate`: write synthetic raw logs into the landing folder."""

from __future__ import annotations

import os
from pathlib import Path

from userprofile.dev.generator import crm_users, generate_events, generate_users, ground_truth
from userprofile.io.context import RunContext, StepReport, Stopwatch


def landing_has_events(landing: str) -> bool:
    events = Path(landing) / "events"
    return events.is_dir() and any(events.iterdir())


def run_generate(ctx: RunContext, skip_existing: bool = False) -> StepReport:
    clock = Stopwatch()
    storage, cfg = ctx.settings.storage, ctx.settings.generator
    report = StepReport("generate")
    if skip_existing and landing_has_events(storage.landing):
        report.rows["skipped"] = f"events already in {storage.landing}/events"
        return report
    users = generate_users(ctx.spark, cfg).cache()
    events = generate_events(users, cfg)
    (
        events.repartition("landing_date")
        .write.mode("overwrite")
        .partitionBy("landing_date")
        .text(os.path.join(storage.landing, "events"))
    )
    crm_users(users).coalesce(1).write.mode("overwrite").option("header", "true").csv(
        os.path.join(storage.landing, "users")
    )
    ground_truth(users).write.mode("overwrite").parquet(os.path.join(storage.ground_truth, "users"))
    users.unpersist()
    report.rows["raw_lines"] = ctx.spark.read.text(os.path.join(storage.landing, "events")).count()
    report.rows["users"] = cfg.users
    report.rows["days"] = cfg.days
    report.rows["landing"] = storage.landing
    report.seconds = clock.seconds()
    return report
