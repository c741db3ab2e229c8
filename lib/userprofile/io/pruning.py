"""Conditions that let an insert-only MERGE read only the target files it needs.

Delta prunes a MERGE's target files with literal predicates on partition columns, so the
dates a batch holds are spelled out in the condition rather than joined from the source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

# Up to this many dates a MERGE's target filter lists them; beyond, it is their range.
MAX_LISTED_DATES = 1000


@dataclass(frozen=True)
class DateWindow:
    """Source and target rows match only when their dates in ``column`` (a partition column
    of the target) are at most ``days`` apart; ``dates`` are every date of the source."""

    column: str
    dates: Sequence[dt.date]
    days: int = 0

    def condition(self) -> str:
        """The MERGE condition's part for this window: the rows' dates at most ``days``
        apart, and only the target's files of ``dates`` widened by ``days`` each side."""
        shifts = range(-self.days, self.days + 1)
        widened = sorted({d + dt.timedelta(days=k) for d in self.dates for k in shifts})
        target, source = f"t.`{self.column}`", f"s.`{self.column}`"
        if self.days == 0:
            near = f"{target} = {source}"
        else:
            low, high = f"date_sub({source}, {self.days})", f"date_add({source}, {self.days})"
            near = f"{target} BETWEEN {low} AND {high}"
        return f"{near} AND {date_filter(self.column, widened)}"


def date_filter(column: str, dates: Sequence[dt.date]) -> str:
    """A condition on the MERGE target ``t`` that holds on every one of ``dates`` in
    ``column``: ``t.column IN (<dates>)``, or ``BETWEEN`` the first and the last.

    Literal, so Delta prunes the table's files with it before reading; the caller passes
    every date its source rows hold (rows without a date match no target row anyway).
    Dates only: Delta's log keeps a MERGE's condition.
    """
    if any(type(d) is not dt.date for d in dates):
        raise TypeError(f"prune_by: {column} must be a date column")
    target = f"t.`{column}`"
    if not dates:
        return "FALSE"
    ordered = sorted(set(dates))
    if len(ordered) > MAX_LISTED_DATES:
        first, last = ordered[0].isoformat(), ordered[-1].isoformat()
        return f"{target} BETWEEN DATE'{first}' AND DATE'{last}'"
    listed = ", ".join(f"DATE'{d.isoformat()}'" for d in ordered)
    return f"{target} IN ({listed})"
