"""The bench's data: generated landing folders (cached), one more day of events, settings."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import GeneratorConfig, Settings
from userprofile.dev.generator import crm_users, generate_events, generate_users, ground_truth

# Events per user over the generator's default 120 days (measured: 464,823 / 2,000).
EVENTS_PER_USER_120_DAYS = 232
BENCH_DAYS = 120
MARKER = "_SUCCESS_BENCH"


def size_config(settings: Settings, events: int) -> GeneratorConfig:
    """The generator's settings for about ``events`` events over ``BENCH_DAYS`` days."""
    users = max(1, events // EVENTS_PER_USER_120_DAYS)
    return settings.generator.model_copy(update={"users": users, "days": BENCH_DAYS})


def cached_landing(spark: SparkSession, cfg: GeneratorConfig, folder: Path) -> Path:
    """Events, CRM users and ground truth of ``cfg``, generated once into ``folder``."""
    people = generate_users(spark, cfg)
    if not (folder / MARKER).exists():
        shutil.rmtree(folder, ignore_errors=True)
        lines = generate_events(people, cfg)
        lines.repartition("landing_date").write.partitionBy("landing_date").text(
            str(folder / "events")
        )
        (folder / MARKER).write_text(str(cfg.users * EVENTS_PER_USER_120_DAYS))
    # Users and truth are cheap and deterministic: added to caches made before they were.
    if not (folder / "users").exists():
        crm = crm_users(people).coalesce(1).write.option("header", "true")
        crm.csv(str(folder / "users"))
    if not (folder / "ground_truth").exists():
        ground_truth(people).write.parquet(str(folder / "ground_truth" / "users"))
    return folder


def write_day(spark: SparkSession, cfg: GeneratorConfig, folder: Path, day: dt.date) -> int:
    """The generator's events of ``day`` for the users of ``cfg`` (active through ``day``),
    as one new delivery in ``folder``; how many lines it has."""
    days = max(cfg.days, (day - cfg.start_date).days + 1)
    longer = cfg.model_copy(update={"days": days})
    lines = generate_events(generate_users(spark, cfg), longer).where(
        F.get_json_object("value", "$.event_ts").startswith(str(day))
    )
    shutil.rmtree(folder, ignore_errors=True)
    lines.select("value").coalesce(1).write.text(str(folder / f"landing_date={day}"))
    return spark.read.text(str(folder)).count()


def bench_settings(settings: Settings, landing: Path, run_root: Path) -> Settings:
    """Settings for a fresh warehouse under ``run_root`` reading the cached landing."""
    shutil.rmtree(run_root, ignore_errors=True)
    storage = settings.storage.model_copy(
        update={
            "landing": str(landing),
            "warehouse": str(run_root / "warehouse"),
            "checkpoints": str(run_root / "checkpoints"),
            "models": str(run_root / "models"),
            "ground_truth": str(landing / "ground_truth"),
        }
    )
    ingest = settings.ingest.model_copy(update={"max_reject_share": 1.0})
    return settings.model_copy(update={"storage": storage, "ingest": ingest})
