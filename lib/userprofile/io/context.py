"""What every step shares: the session, the settings, a run id, table access, and a report."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from userprofile.config import Settings
from userprofile.errors import MissingInputError
from userprofile.io import tables


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


def utc_now() -> dt.datetime:
    """Now in UTC as a naive timestamp, as Spark's session time zone (UTC) stores it."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_run_id() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)
