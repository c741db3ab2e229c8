"""What an ingest or reprocess wrote, counted, and the data-quality gate over the counts."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from userprofile.errors import DataQualityError
from userprofile.ingest.records import REJECT_REASONS
from userprofile.io.context import StepReport


@dataclass
class BatchCounts:
    """What one write of classified rows did."""

    by_reason: Counter[str | None]  # null: accepted
    # One rejected line per reason code (the first seen), for the over-limit error.
    samples: dict[str, str]
    suppressed: int
    dates: list[dt.date]  # event dates written
    files: int  # source files with rows in the write


@dataclass
class IngestCounts:
    accepted: int = 0
    suppressed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # One rejected line per reason code (the first seen), for the over-limit error.
    samples: dict[str, str] = field(default_factory=dict)
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
        for code, line in batch.samples.items():
            self.samples.setdefault(code, line)
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


SAMPLE_CHARS = 200
TOP_REASONS = 3


def check_reject_share(counts: IngestCounts, max_share: float) -> None:
    """Raise when too much was quarantined, naming the top reasons with a sample line each."""
    share = counts.rejected_share()
    if share <= max_share:
        return
    reasons = "\n".join(
        f"  {code}: {n} ({REJECT_REASONS.get(code, code)}), e.g. "
        f"{_shortened(counts.samples.get(code, ''))!r}"
        for code, n in counts.rejected.most_common(TOP_REASONS)
    )
    raise DataQualityError(
        f"{share:.1%} of {counts.total} event records were quarantined this run "
        f"(limit ingest.max_reject_share = {max_share:.1%}); top reasons:\n{reasons}\n"
        "Fix the source's mapping, then redo its files with "
        "`userprofile reprocess --source NAME`; every rejected line is in the quarantine table"
    )


def _shortened(line: str) -> str:
    return line if len(line) <= SAMPLE_CHARS else line[:SAMPLE_CHARS] + "..."
