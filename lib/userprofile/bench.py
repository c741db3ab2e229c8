"""`userprofile bench`: figures, not tests. Generates events at chosen sizes once into a
cache folder, then times steps on them and prints a table (and writes it as JSON).

Measured now: the floor (one Spark scan parsing every field of the raw JSON),
then the pipeline's steps into a fresh warehouse (ingest, features, train,
profile), as events per second, and the models' quality against the planted
truth (``userprofile evaluate``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import Settings
from userprofile.generator import (
    EVENT_LOG_SCHEMA,
    crm_users,
    generate_events,
    generate_users,
    ground_truth,
)
from userprofile.steps.common import RunContext, StepReport
from userprofile.steps.evaluate import run_evaluate
from userprofile.steps.features import run_features
from userprofile.steps.ingest import run_ingest
from userprofile.steps.profile import run_profile
from userprofile.steps.train import run_train

# Events per user over the generator's default 120 days (measured: 464,823 / 2,000).
EVENTS_PER_USER_120_DAYS = 232
BENCH_DAYS = 120
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


@dataclass
class BenchRow:
    size: str
    step: str
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        rate, events = self.events_per_second, self.events
        return f"{self.size:>6}  {self.step:<24} {events:>12,} {self.seconds:>9.1f} {rate:>12,.0f}"


HEADER = f"\n{'size':>6}  {'step':<24} {'events':>12} {'seconds':>9} {'events/s':>12}"


def parse_size(text: str) -> int:
    """'1M' -> 1_000_000, '250k' -> 250_000, '5000' -> 5000."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 250k, 1M or 10M")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def run_bench(
    spark: SparkSession, settings: Settings, sizes: list[str], root: Path
) -> tuple[list[BenchRow], dict[str, dict[str, int | float | str]]]:
    """Timings per size and step, and the models' quality per size; rows print as they come."""
    rows: list[BenchRow] = []
    quality: dict[str, dict[str, int | float | str]] = {}
    print(HEADER, flush=True)
    for size in sizes:
        landing = _cached_landing(spark, settings, parse_size(size), root / "cache" / size)
        events = spark.read.text(str(landing / "events")).count()
        rows.append(BenchRow(size, "floor: parse raw JSON", events, _time_floor(spark, landing)))
        print(rows[-1].line(), flush=True)
        ctx = RunContext(spark, _bench_settings(settings, landing, root / "run"))
        as_of = settings.generator.start_date + dt.timedelta(days=BENCH_DAYS)
        for step, seconds in _time_steps(ctx, as_of):
            rows.append(BenchRow(size, step, events, seconds))
            print(rows[-1].line(), flush=True)
        quality[size] = run_evaluate(ctx, as_of).rows
        print_quality(size, quality[size])
    return rows, quality


def _time_steps(ctx: RunContext, as_of: dt.date) -> Iterator[tuple[str, float]]:
    steps: list[tuple[str, Callable[[], StepReport]]] = [
        ("ingest", lambda: run_ingest(ctx)),
        ("features", lambda: run_features(ctx, as_of)),
        ("train", lambda: run_train(ctx, as_of)),
        ("profile", lambda: run_profile(ctx, as_of)),
    ]
    for step, run in steps:
        start = time.perf_counter()
        run()
        yield step, round(time.perf_counter() - start, 2)


def _cached_landing(spark: SparkSession, settings: Settings, events: int, folder: Path) -> Path:
    """Events, CRM users and ground truth for ``events`` events, generated once per size."""
    users = max(1, events // EVENTS_PER_USER_120_DAYS)
    cfg = settings.generator.model_copy(update={"users": users, "days": BENCH_DAYS})
    people = generate_users(spark, cfg)
    if not (folder / "_SUCCESS_BENCH").exists():
        shutil.rmtree(folder, ignore_errors=True)
        lines = generate_events(people, cfg)
        lines.repartition("landing_date").write.partitionBy("landing_date").text(
            str(folder / "events")
        )
        (folder / "_SUCCESS_BENCH").write_text(str(events))
    # Users and truth are cheap and deterministic: added to caches made before they were.
    if not (folder / "users").exists():
        crm = crm_users(people).coalesce(1).write.option("header", "true")
        crm.csv(str(folder / "users"))
    if not (folder / "ground_truth").exists():
        ground_truth(people).write.parquet(str(folder / "ground_truth" / "users"))
    return folder


def _time_floor(spark: SparkSession, landing: Path) -> float:
    """A bare scan: Spark's JSON reader with the schema given, every field counted once."""
    typed = EVENT_LOG_SCHEMA.replace("event_ts string", "event_ts timestamp")
    raw = spark.read.schema(typed).json(str(landing / "events"))
    start = time.perf_counter()
    raw.agg(*[F.count(c) for c in raw.columns]).collect()
    return round(time.perf_counter() - start, 2)


def _bench_settings(settings: Settings, landing: Path, run_root: Path) -> Settings:
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


def print_quality(size: str, figures: dict[str, int | float | str]) -> None:
    print(f"\nmodel quality at {size} (userprofile evaluate):")
    for key, value in figures.items():
        print(f"  {key:<34} {value}")
    print(flush=True)


def write_json(
    rows: list[BenchRow], quality: dict[str, dict[str, int | float | str]], path: Path
) -> None:
    os.makedirs(path.parent, exist_ok=True)
    records = [{**asdict(r), "events_per_second": round(r.events_per_second)} for r in rows]
    path.write_text(json.dumps({"steps": records, "quality": quality}, indent=2))
