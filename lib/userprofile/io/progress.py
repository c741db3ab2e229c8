"""What a run tells its operator: progress lines while steps run, and a summary at the end."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

from pyspark.sql import SparkSession

from userprofile.io.context import RunContext, StepReport
from userprofile.io.session import is_connect

log = logging.getLogger("userprofile")
# A step running longer than this logs what Spark is doing, once per interval.
PROGRESS_EVERY_SECONDS = 20.0


def logged(spark: SparkSession, step: str, run: Callable[[], StepReport]) -> StepReport:
    """Run a step, logging its start, Spark's progress while it is long, and its counts."""
    log.info("%s: started", step)
    with SparkProgress(spark, step):
        report = run()
    counts = report.counts()
    log.info("%s: done in %.1f s%s", step, report.seconds, f" ({counts})" if counts else "")
    return report


class SparkProgress:
    """Logs the active Spark stages (tasks done / total) every ``every`` seconds.

    Over Spark Connect the server streams each operation's stages to a progress
    handler; on a classic session the status tracker is asked. Either way a step's
    progress line reads the same.
    """

    def __init__(self, spark: SparkSession, label: str, every: float = PROGRESS_EVERY_SECONDS):
        self.spark, self.label, self.every = spark, label, every
        self.stop = threading.Event()
        self.start = time.perf_counter()
        self.thread = threading.Thread(target=self._watch, name=f"progress-{label}", daemon=True)
        self.connect_stages: list[tuple[int, int]] = []
        self.handler: Callable[..., None] | None = None

    def __enter__(self) -> SparkProgress:
        if is_connect(self.spark):
            self.handler = self._on_connect_progress
            self.spark.registerProgressHandler(self.handler)
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
        if self.handler is not None:
            self.spark.removeProgressHandler(self.handler)

    def _on_connect_progress(
        self, stages: Iterable[Any] | None, inflight_tasks: int, operation_id: Any, done: bool
    ) -> None:
        running = [] if done else [s for s in stages or () if not s.done]
        self.connect_stages = [(s.num_completed_tasks, s.num_tasks) for s in running]

    def _active_stages(self) -> Callable[[], list[tuple[int, int]]] | None:
        if self.handler is not None:
            return lambda: self.connect_stages
        try:
            # Classic sessions only, a progress diagnostic (Connect is handled above and
            # never reaches this line): the in-process JVM's status tracker.
            tracker = self.spark.sparkContext.statusTracker()
        except Exception:  # a session without a reachable SparkContext: no progress lines
            return None

        def classic() -> list[tuple[int, int]]:
            stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
            return [(s.numCompletedTasks, s.numTasks) for s in stages if s is not None]

        return classic

    def _watch(self) -> None:
        active = self._active_stages()
        if active is None:
            return
        while not self.stop.wait(self.every):
            done = [f"{finished}/{total}" for finished, total in active()]
            elapsed = time.perf_counter() - self.start
            tasks = f"tasks {', '.join(done)}" if done else "between Spark jobs"
            log.info("%s: running %.0f s, %s", self.label, elapsed, tasks)


def print_summary(
    ctx: RunContext, step: str, as_of: dt.date | None, reports: list[StepReport]
) -> None:
    """What a command did: a table of steps, then each step's details (stdout)."""
    snapshot = f" (snapshot {as_of})" if as_of is not None else ""
    print(f"\nuserprofile {step}{snapshot}: run {ctx.run_id}")
    for line in summary_table(reports):
        print(f"  {line}")
    print()
    width = max((len(k) for r in reports for k in r.rows), default=10)
    for report in reports:
        print(f"  {report.step} ({report.seconds:.1f} s)")
        for key, value in report.rows.items():
            print(f"    {key:<{width}}  {value}")
    if step in ("profile", "pipeline"):
        print(f"  user_profile table: {ctx.table('user_profile')}")
    if step == "report":
        print(f"  open it in a browser: file://{reports[0].rows['report']}")


def summary_table(reports: list[StepReport]) -> list[str]:
    """One line per step: seconds, rows in, rows out, quarantined; a total for several."""

    def cell(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    lines = [f"{'step':<10} {'seconds':>8} {'rows in':>12} {'rows out':>12} {'quarantined':>12}"]
    for r in reports:
        counts = f"{cell(r.rows_in):>12} {cell(r.rows_out):>12} {cell(r.quarantined):>12}"
        lines.append(f"{r.step:<10} {r.seconds:>8.1f} {counts}")
    if len(reports) > 1:
        lines.append(f"{'total':<10} {sum(r.seconds for r in reports):>8.1f}")
    return lines


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in stubs
    """Writes to whatever ``sys.stderr`` is now (notebooks and tests replace it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def log_to_stderr() -> None:
    """Progress lines (`HH:MM:SS step: ...`) on stderr, unless the host configured logging."""
    logger = logging.getLogger("userprofile")
    if logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
