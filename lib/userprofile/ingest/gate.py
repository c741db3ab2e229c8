"""The data-quality gate: a delivery with too many rejected records is held back, unwritten.

A delivery is one micro-batch of a source: the files Spark planned for it. Its id
is a hash of the source name and the sorted file paths, so a re-run (which replays
the same files from the stream's offset log) finds the same id. The gate runs in
the batch after classifying and before anything is written: when more than
``ingest.max_reject_share`` of at least ``ingest.reject_share_min_rows`` records is rejected and no
operator released the delivery, it records the block in ``blocked_deliveries`` and
raises. The streaming query fails, the checkpoint does not commit the batch, and
the next ingest reads the same files again: it is held until they are fixed (same
names, fewer rejects) or released with ``userprofile release``, which appends to
``delivery_releases``; a released delivery is ingested as usual.

The batch reports through the table, not driver state (over Spark Connect it runs
beside the server): the driver reads the row back to build the error.
"""

from __future__ import annotations

import getpass
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Row
from pyspark.sql import functions as F

from userprofile.errors import DataQualityError, UserProfileError
from userprofile.ingest.counts import Tally, top_reasons
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now

BLOCKED_SCHEMA = (
    "delivery_id string, source string, run_id string, attempt string, files array<string>, "
    "rows long, rejected map<string,bigint>, share double, max_share double, blocked_at timestamp"
)
RELEASES_SCHEMA = (
    "delivery_id string, reason string, released_by string, released_at timestamp, run_id string"
)
SHOWN_FILES = 2


class DeliveryBlockedError(DataQualityError):
    """Raised inside the micro-batch; the driver turns it into a ``DataQualityError``."""


def delivery_id(source: str, files: Sequence[str]) -> str:
    """16 hex digits of SHA-256 over the source name and the sorted file paths."""
    text = "\n".join([source, *sorted(files)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def over_limit(counted: Tally, max_share: float, min_rows: int) -> bool:
    """Whether the gate holds these rows: a share exactly at the limit passes."""
    return counted.rows >= min_rows and counted.rejected_share() > max_share


def hold_if_over_limit(ctx: RunContext, source: str, attempt: str, counted: Tally) -> None:
    """Record and raise ``DeliveryBlockedError`` when the batch fails the gate, unreleased."""
    limit = ctx.settings.ingest.max_reject_share
    if not over_limit(counted, limit, ctx.settings.ingest.reject_share_min_rows):
        return
    delivery = delivery_id(source, counted.files)
    if released(ctx, delivery):
        return
    block = {
        "delivery_id": delivery,
        "source": source,
        "run_id": ctx.run_id,
        "attempt": attempt,
        "files": list(counted.files),
        "rows": counted.rows,
        "rejected": dict(counted.rejected),
        "share": counted.rejected_share(),
        "max_share": limit,
        "blocked_at": utc_now(),
    }
    frame = ctx.spark.createDataFrame([tuple(block.values())], BLOCKED_SCHEMA)
    tables.append(frame, ctx.table("blocked_deliveries"))
    raise DeliveryBlockedError(blocked_message(ctx, block))


def released(ctx: RunContext, delivery: str) -> bool:
    ref = ctx.table("delivery_releases")
    if not tables.exists(ctx.spark, ref):
        return False
    return not tables.read(ctx.spark, ref).where(F.col("delivery_id") == delivery).isEmpty()


def blocked_error(ctx: RunContext, source: str, attempt: str) -> DataQualityError | None:
    """The error for the delivery of ``source`` this ingest call blocked (None: it blocked none)."""
    ref = ctx.table("blocked_deliveries")
    if not tables.exists(ctx.spark, ref):
        return None
    this_call = (
        (F.col("run_id") == ctx.run_id)
        & (F.col("source") == source)
        & (F.col("attempt") == attempt)
    )
    row = tables.read(ctx.spark, ref).where(this_call).orderBy(F.desc("blocked_at")).first()
    return None if row is None else DataQualityError(blocked_message(ctx, row.asDict()))


def blocked_message(ctx: RunContext, row: Mapping[str, Any]) -> str:
    """One line: source, delivery, share against the limit, top reasons, files, what to do.

    No rejected line is quoted (they hold personal data), and no single quotes, which
    ``errors.scrubbed`` would take for a quoted value.
    """
    files: list[str] = list(row["files"])
    shown = ", ".join(files[:SHOWN_FILES])
    if len(files) > SHOWN_FILES:
        shown += f" and {len(files) - SHOWN_FILES} more"
    rejected = sum(row["rejected"].values())
    share, limit = _percents(row["share"], row["max_share"])
    return (
        f"ingest held back delivery {row['delivery_id']} of source {row['source']}: "
        f"{rejected} of {row['rows']} records rejected ({share}, over "
        f"ingest.max_reject_share = {limit}); top reasons: {top_reasons(row['rejected'])}; "
        f"files: {shown} (all in table {ctx.table('blocked_deliveries')}). Nothing of it was "
        "written. Fix the files (same names) and run ingest again, or let it in as it is "
        f"(rejected lines to the quarantine): userprofile release --delivery {row['delivery_id']} "
        '--reason "WHY"'
    )


def _percents(share: float, limit: float) -> tuple[str, str]:
    """Both as percentages, with more digits when one decimal would show them equal."""
    for digits in (1, 3):
        shown = f"{share:.{digits}%}", f"{limit:.{digits}%}"
        if shown[0] != shown[1]:
            break
    return shown


def run_release(ctx: RunContext, delivery: str, reason: str) -> StepReport:
    """`userprofile release`: record that a blocked delivery may go in as it is."""
    clock = Stopwatch()
    if not reason.strip():
        raise UserProfileError("release: --reason must say why the delivery may go in as it is")
    block = _last_block(ctx, delivery)
    released_by = _operator()
    record = ctx.spark.createDataFrame(
        [(delivery, reason.strip(), released_by, utc_now(), ctx.run_id)], RELEASES_SCHEMA
    )
    tables.append(record, ctx.table("delivery_releases"))
    rejected = sum(block["rejected"].values())
    return StepReport(
        "release",
        {
            "delivery": delivery,
            "source": block["source"],
            "files": len(block["files"]),
            "records rejected": f"{rejected} of {block['rows']} ({block['share']:.1%})",
            "released by": released_by,
            "next": "run `userprofile ingest` again: the delivery goes in as it is, "
            "its rejected lines to the quarantine",
        },
        clock.seconds(),
    )


def _last_block(ctx: RunContext, delivery: str) -> Row:
    ref = ctx.table("blocked_deliveries")
    row = None
    if tables.exists(ctx.spark, ref):
        frame = tables.read(ctx.spark, ref).where(F.col("delivery_id") == delivery)
        row = frame.orderBy(F.desc("blocked_at")).first()
    if row is None:
        raise UserProfileError(
            f"release: no delivery {delivery} was held back (the ingest error names the id; "
            f"every held delivery is in table {ref})"
        )
    return row


def _operator() -> str:
    """Who releases: the OS user, as the audit row records it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor the password database
        raise UserProfileError(
            "release: cannot tell who you are (set USER): a release records its operator"
        ) from None


# Spark's error for a file it cannot decode (a gzip file cut short, a corrupt one).
UNREADABLE_FILE = re.compile(
    r"\[FAILED_READ_FILE\.\w+\] Encountered error while reading file (\S+?)\.\s"
)


def unreadable_error(error: Exception, source: str) -> DataQualityError | None:
    """The error for a delivery of ``source`` that Spark could not read, naming the file;
    None for any other error. Nothing of that batch was written or checkpointed."""
    found = UNREADABLE_FILE.search(str(error))
    if found is None:
        return None
    return DataQualityError(
        f"ingest could not read {found.group(1)} of source {source}: the file is cut short or "
        "corrupt. Nothing of its delivery was written; deliver it again whole under the same "
        "name and run ingest again"
    )
