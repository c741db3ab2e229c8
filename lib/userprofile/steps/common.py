"""What every step shares: the session, the settings, a run id, and a report."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from pyspark.sql import DataFrame, SparkSession

from userprofile import tables
from userprofile.config import Settings
from userprofile.errors import MissingInputError


@dataclass(frozen=True)
class RunContext:
    spark: SparkSession
    settings: Settings
    run_id: str = field(default_factory=lambda: new_run_id())

    def table(self, key: str) -> tables.TableRef:
        return tables.resolve(self.settings, key)

    def read(self, key: str) -> DataFrame:
        """Read a table an earlier step must have written, with a clear error if it has not."""
        ref = self.table(key)
        if not tables.exists(self.spark, ref):
            raise MissingInputError(
                f"table {key} ({ref}) does not exist yet: run the step that writes it first"
            )
        return tables.read(self.spark, ref)


log = logging.getLogger("userprofile")
# A step running longer than this logs what Spark is doing, once per interval.
PROGRESS_EVERY_SECONDS = 20.0


@dataclass
class StepReport:
    step: str
    rows: dict[str, int | float | str] = field(default_factory=dict)
    seconds: float = 0.0
    # Rows read, written and quarantined, for the run's summary table (None: not applicable).
    rows_in: int | None = None
    rows_out: int | None = None
    quarantined: int | None = None

    def counts(self) -> str:
        parts = [
            f"{label} {value:,}"
            for label, value in (
                ("rows in", self.rows_in),
                ("rows out", self.rows_out),
                ("quarantined", self.quarantined),
            )
            if value is not None
        ]
        return ", ".join(parts)


def logged(spark: SparkSession, step: str, run: Callable[[], StepReport]) -> StepReport:
    """Run a step, logging its start, Spark's progress while it is long, and its counts."""
    log.info("%s: started", step)
    with SparkProgress(spark, step):
        report = run()
    counts = report.counts()
    log.info("%s: done in %.1f s%s", step, report.seconds, f" ({counts})" if counts else "")
    return report


class SparkProgress:
    """Logs the active Spark stages (tasks done / total) every ``every`` seconds."""

    def __init__(self, spark: SparkSession, label: str, every: float = PROGRESS_EVERY_SECONDS):
        self.spark, self.label, self.every = spark, label, every
        self.stop = threading.Event()
        self.start = time.perf_counter()
        self.thread = threading.Thread(target=self._watch, name=f"progress-{label}", daemon=True)

    def __enter__(self) -> SparkProgress:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _watch(self) -> None:
        try:
            tracker = self.spark.sparkContext.statusTracker()
        except Exception:  # Spark Connect has no SparkContext: no progress, no failure
            return
        while not self.stop.wait(self.every):
            stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
            done = [f"{s.numCompletedTasks}/{s.numTasks}" for s in stages if s is not None]
            elapsed = time.perf_counter() - self.start
            tasks = f"tasks {', '.join(done)}" if done else "between Spark jobs"
            log.info("%s: running %.0f s, %s", self.label, elapsed, tasks)


def new_run_id() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)
