"""What an ingest or reprocess wrote, counted, and the reprocess's data-quality check.

Ingest holds a delivery back before writing it (``userprofile.ingest.gate``);
reprocess checks the share of rejected records after writing (``check_reject_share``).
Neither puts a rejected line into an error: they hold personal data.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.errors import DataQualityError
from userprofile.io.context import StepReport


@dataclass(frozen=True)
class Tally:
    """Rows of classified records per reason code (None: accepted), and their files."""

    by_reason: Counter[str | None]
    files: tuple[str, ...]  # sorted paths of the files with rows

    @property
    def rows(self) -> int:
        return sum(self.by_reason.values())

    @property
    def rejected(self) -> Counter[str]:
        return Counter({str(code): n for code, n in self.by_reason.items() if code})

    def rejected_share(self) -> float:
        return sum(self.rejected.values()) / self.rows if self.rows else 0.0


def tally(classified: DataFrame) -> Tally:
    """Count classified rows per reason code, with their files: one small aggregation."""
    # One row per reason code (a dozen at most), each with the files it came from.
    rows = (
        classified.groupBy("reason_code")
        .agg(F.count(F.lit(1)).alias("count"), F.collect_set("_source_file").alias("files"))
        .collect()
    )
    files = sorted({str(f) for r in rows for f in r["files"]})
    return Tally(Counter({r["reason_code"]: int(r["count"]) for r in rows}), tuple(files))


@dataclass
class BatchCounts:
    """What one write of classified rows did."""

    by_reason: Counter[str | None]  # null: accepted
    suppressed: int
    dates: list[dt.date]  # event dates written
    files: int  # source files with rows in the write


@dataclass
class IngestCounts:
    accepted: int = 0
    suppressed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    changed_dates: set[dt.date] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.accepted + sum(self.rejected.values())

    def rejected_share(self) -> float:
        return sum(self.rejected.values()) / self.total if self.total else 0.0

    def add(self, batch: BatchCounts) -> None:
        by_reason = Counter(batch.by_reason)
        self.accepted += by_reason.pop(None, 0)
        self.rejected.update({str(code): n for code, n in by_reason.items()})
        self.suppressed += batch.suppressed
        self.changed_dates.update(batch.dates)

    def step_report(
        self, step: str, seconds: float, rows: dict[str, int | str] | None = None
    ) -> StepReport:
        """Lines in (erased users' included), accepted and quarantined by reason; ``rows`` go
        after the accepted count."""
        report = StepReport(
            step,
            {"events accepted": self.accepted, **(rows or {})},
            seconds=seconds,
            rows_in=self.total + self.suppressed,
            rows_out=self.accepted,
            quarantined=sum(self.rejected.values()),
        )
        if self.suppressed:
            report.rows["dropped (erased users)"] = self.suppressed
        for code, n in sorted(self.rejected.items()):
            report.rows[f"quarantined {code}"] = n
        if self.changed_dates:
            report.rows["event dates changed"] = describe_dates(self.changed_dates)
        return report


def describe_dates(dates: set[dt.date]) -> str:
    """'2026-01-03' or '2026-01-01 .. 2026-04-30 (120 dates)': where to recompute from."""
    first, last = min(dates), max(dates)
    if first == last:
        return first.isoformat()
    return f"{first} .. {last} ({len(dates)} dates)"


TOP_REASONS = 3


def top_reasons(rejected: Counter[str] | dict[str, int]) -> str:
    """'BAD_TIMESTAMP 5, NEGATIVE_PRICE 3, MISSING_USER 2': the most frequent codes first."""
    ranked = sorted(Counter(rejected).items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{code} {n}" for code, n in ranked[:TOP_REASONS])


def check_reject_share(counts: IngestCounts, max_share: float) -> None:
    """Raise when too much was quarantined, naming the top reasons with their counts."""
    share = counts.rejected_share()
    if share <= max_share:
        return
    # One line, codes and counts only: a rejected line may hold personal data.
    raise DataQualityError(
        f"{share:.1%} of {counts.total} event records were quarantined "
        f"(limit ingest.max_reject_share = {max_share:.1%}); top reasons: "
        f"{top_reasons(counts.rejected)}. Every rejected line is in the quarantine table "
        "(reason_code, _source_file); fix the source mapping, then redo its files with "
        "`userprofile reprocess --source NAME`"
    )
