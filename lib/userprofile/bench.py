"""`userprofile bench`: figures, not tests. Generates events at chosen sizes once into a
cache folder, then times steps on them and prints a table (and writes it as JSON).

Measured now: the floor (one Spark scan parsing every field of the raw JSON)
and ingestion (raw files -> bronze, quarantine and silver) into a fresh
warehouse, as events per second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import Settings
from userprofile.generator import EVENT_LOG_SCHEMA, generate_events, generate_users
from userprofile.steps.common import RunContext
from userprofile.steps.ingest import run_ingest

# Events per user over the generator's default 120 days (measured: 464,823 / 2,000).
EVENTS_PER_USER_120_DAYS = 232
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


def parse_size(text: str) -> int:
    """'1M' -> 1_000_000, '250k' -> 250_000, '5000' -> 5000."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 250k, 1M or 10M")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def run_bench(
    spark: SparkSession, settings: Settings, sizes: list[str], root: Path
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    for size in sizes:
        landing = _cached_landing(spark, settings, parse_size(size), root / "cache" / size)
        events = spark.read.text(str(landing / "events")).count()
        rows.append(BenchRow(size, "floor: parse raw JSON", events, _time_floor(spark, landing)))
        rows.append(
            BenchRow(size, "ingest", events, _time_ingest(spark, settings, landing, root / "run"))
        )
    return rows


def _cached_landing(spark: SparkSession, settings: Settings, events: int, folder: Path) -> Path:
    if (folder / "_SUCCESS_BENCH").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    users = max(1, events // EVENTS_PER_USER_120_DAYS)
    cfg = settings.generator.model_copy(update={"users": users, "days": 120})
    people = generate_users(spark, cfg)
    lines = generate_events(people, cfg)
    lines.repartition("landing_date").write.partitionBy("landing_date").text(str(folder / "events"))
    (folder / "_SUCCESS_BENCH").write_text(str(events))
    return folder


def _time_floor(spark: SparkSession, landing: Path) -> float:
    """A bare scan: Spark's JSON reader with the schema given, every field counted once."""
    typed = EVENT_LOG_SCHEMA.replace("event_ts string", "event_ts timestamp")
    raw = spark.read.schema(typed).json(str(landing / "events"))
    start = time.perf_counter()
    raw.agg(*[F.count(c) for c in raw.columns]).collect()
    return round(time.perf_counter() - start, 2)


def _time_ingest(spark: SparkSession, settings: Settings, landing: Path, run_root: Path) -> float:
    shutil.rmtree(run_root, ignore_errors=True)
    storage = settings.storage.model_copy(
        update={
            "landing": str(landing),
            "warehouse": str(run_root / "warehouse"),
            "checkpoints": str(run_root / "checkpoints"),
        }
    )
    ingest = settings.ingest.model_copy(update={"max_reject_share": 1.0})
    bench_settings = settings.model_copy(update={"storage": storage, "ingest": ingest})
    start = time.perf_counter()
    run_ingest(RunContext(spark, bench_settings))
    return round(time.perf_counter() - start, 2)


def print_table(rows: list[BenchRow]) -> None:
    print(f"\n{'size':>6}  {'step':<24} {'events':>12} {'seconds':>9} {'events/s':>12}")
    for r in rows:
        rate = r.events_per_second
        print(f"{r.size:>6}  {r.step:<24} {r.events:>12,} {r.seconds:>9.1f} {rate:>12,.0f}")


def write_json(rows: list[BenchRow], path: Path) -> None:
    os.makedirs(path.parent, exist_ok=True)
    records = [{**asdict(r), "events_per_second": round(r.events_per_second)} for r in rows]
    path.write_text(json.dumps(records, indent=2))
