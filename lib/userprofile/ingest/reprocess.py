"""`userprofile reprocess`: redo deliveries of one source after its mapping was fixed.

Ingest reads each landing file once (the streaming checkpoint remembers it), so
a delivery rejected by a wrong mapping (say a wrong ``timestamp_format``: 100%
quarantined) is not read again by ``ingest``. ``reprocess --source NAME``
re-reads chosen files of that source with the current mapping and replaces
exactly what they produced before; everything else is left as it is.

Which files:

- Only files of the source that were ingested: their path is in bronze or
  quarantine under the source's name (or in the journal of an interrupted
  reprocess, see below). A file never ingested is left to ``ingest``; reading
  it here would have the streaming checkpoint read it a second time later.
- ``--files GLOB``: paths relative to the source's landing folder, matched with
  ``fnmatch`` (``*`` also matches ``/``), e.g. ``'landing_date=2026-01-0[5-9]/*'``.
- ``--since DATE``: files whose modification time is on or after DATE 00:00 UTC.
  The modification time, not a ``landing_date=`` folder: every file system has
  it, whatever the source's folder layout (a CSV export has no such folder),
  and ingest already uses it (the file's time bounds FUTURE_TIMESTAMP); a
  selection by folder is a ``--files`` glob.
- Neither: every ingested file of the source. Ingested files no longer in
  landing cannot be read again, so they are never chosen: their rows stay and
  the report counts them.
- An unknown source, or a ``--files`` / ``--since`` that selects nothing, is an
  error naming the option (the source is checked before Spark starts).

What is replaced: the chosen files' rows in bronze and quarantine (both carry
``_source_file``), and the silver rows whose key (event_date, source, event_id)
came from the chosen files' old bronze rows and from no other file's bronze
rows: silver has no ``_source_file``, and an event another file delivered too
stays. The files are then classified with the current mapping and written by
ingest's own write path (``step.write_classified``): bronze and quarantine
appended, silver and the identity map merged insert-only. So, erased users stay
out, the identity map only grows, sessions are found among the reprocessed
files (as within one ingest batch), and ``ingest.max_reject_share`` applies to
the re-classified rows (the run fails after writing them, as ingest does).
``ops/ingest_log`` gets a row with ``command = 'reprocess'``, the number of files
and the rows removed; its ``changed_dates`` include the dates rows left.

Crash safety: before deleting anything, the chosen files are written to a
journal under ``storage.checkpoints/reprocess/<source>``, removed when the run
ends. A run finds the files of an unfinished journal and always redoes them
too, so running the same reprocess again after a crash converges to the same end
state: deletes are by file (silver first, while the old bronze rows still tell
which keys to remove; then bronze; then quarantine), then the files are re-added.
The appends' Delta txn app id holds the run id and an id of the attempt, so a
repeated write within an attempt is skipped and a new attempt writes afresh.
Do not run it while ``ingest`` runs on the same source.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import uuid
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import EventSource, Settings
from userprofile.errors import ConfigError, MissingInputError, UserProfileError
from userprofile.ingest.counts import IngestCounts, check_reject_share
from userprofile.ingest.privacy import pseudonym_key
from userprofile.ingest.records import classify
from userprofile.ingest.step import (
    SILVER_KEY,
    append_log,
    landing_path,
    with_lineage,
    write_classified,
)
from userprofile.ingest.user_days import refresh_user_days
from userprofile.io import locations, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch

EPOCH = dt.datetime(1970, 1, 1)
# A stored silver row: an event on its date (a re-sent copy on another date is another row).
SILVER_ROW = ["event_date", *SILVER_KEY]


@dataclass(frozen=True)
class LandingFile:
    uri: str  # as ``_metadata.file_path`` gives it, so as ``_source_file`` holds it
    path: str  # the Hadoop path, to read it again
    relative: str  # under the source's landing folder: what --files matches
    modified: dt.datetime  # UTC


@dataclass(frozen=True)
class Selection:
    files: list[LandingFile]
    interrupted: int  # of them, files of an unfinished reprocess
    gone: int  # ingested files no longer in landing (kept as they are)


@dataclass(frozen=True)
class Plan:
    name: str
    source: EventSource
    selection: Selection
    attempt: str


@dataclass(frozen=True)
class Removed:
    rows: dict[str, int]  # by table key
    dates: set[dt.date]  # event dates of the bronze rows removed


def run_reprocess(
    ctx: RunContext, name: str, files: str | None = None, since: dt.date | None = None
) -> StepReport:
    clock = Stopwatch()
    plan = plan_reprocess(ctx, name, files, since)
    removed = remove_previous_output(ctx, plan)
    return add_reclassified(ctx, plan, removed, clock)


def configured_source(settings: Settings, name: str) -> EventSource:
    """The source named by ``--source``, or an error listing the configured ones."""
    sources = settings.ingest.sources
    if name not in sources:
        raise ConfigError(
            f"--source {name!r}: no such source in ingest.sources "
            f"(configured: {', '.join(sorted(sources)) or 'none'})"
        )
    return sources[name]


def plan_reprocess(ctx: RunContext, name: str, files: str | None, since: dt.date | None) -> Plan:
    """Choose the files and write them to the journal; nothing is deleted yet."""
    source = configured_source(ctx.settings, name)
    journal = journal_folder(ctx.settings, name)
    selection = choose_files(
        name,
        landing_files(ctx.spark, landing_path(ctx, source.path)),
        ingested_files(ctx, name),
        _journal_entries(ctx.spark, journal),
        files,
        since,
    )
    attempt = uuid.uuid4().hex[:12]
    uris = [(f.uri,) for f in selection.files]
    entries = ctx.spark.createDataFrame([(u, attempt) for (u,) in uris], JOURNAL_SCHEMA)
    tables.append(entries, journal)
    return Plan(name, source, selection, attempt)


def choose_files(
    name: str,
    landing: list[LandingFile],
    ingested: set[str],
    pending: set[str],
    files: str | None,
    since: dt.date | None,
) -> Selection:
    """The ingested files in landing that ``--files`` / ``--since`` select, plus those of an
    unfinished reprocess (always redone)."""
    present = {f.uri: f for f in landing}
    missing = sorted(pending - present.keys())
    if missing:
        raise UserProfileError(
            f"an unfinished reprocess of source {name!r} needs {len(missing)} file(s) no longer "
            f"in landing, e.g. {missing[0]}: put them back, then run reprocess again"
        )
    known = ingested | pending
    if not known:
        raise MissingInputError(
            f"source {name!r} has no ingested files to reprocess (ingest reads new files)"
        )
    candidates = sorted((present[u] for u in known if u in present), key=lambda f: f.uri)
    if not candidates:
        raise MissingInputError(
            f"none of the {len(known)} ingested files of source {name!r} is in landing any more"
        )
    chosen = candidates
    if files is not None:
        chosen = [f for f in chosen if fnmatch.fnmatchcase(f.relative, files)]
        if not chosen:
            raise ConfigError(
                f"--files {files!r} matches none of the {len(candidates)} ingested files of "
                f"source {name!r} (paths relative to its landing folder, e.g. "
                f"{candidates[0].relative!r})"
            )
    if since is not None:
        start = dt.datetime.combine(since, dt.time())
        chosen = [f for f in chosen if f.modified >= start]
        if not chosen:
            newest = max(f.modified for f in candidates)
            raise ConfigError(
                f"--since {since}: none of the {len(candidates)} ingested files of source "
                f"{name!r} was modified on or after {since} (UTC); the newest on {newest:%Y-%m-%d}"
            )
    redone = {f.uri for f in chosen}
    interrupted = [present[u] for u in sorted(pending) if u not in redone]
    return Selection(
        sorted([*chosen, *interrupted], key=lambda f: f.uri),
        interrupted=len(pending),
        gone=len(ingested - present.keys()),
    )


def landing_files(spark: SparkSession, folder: str) -> list[LandingFile]:
    """Every file under the folder with its time (names and times only: content is not read)."""
    if not tables.path_exists(spark, folder):
        return []
    listing = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(folder)
        .select(
            F.col("_metadata.file_path").alias("uri"),
            "path",
            # As a number: Python would read a timestamp in the driver's local zone.
            F.unix_micros("modificationTime").alias("micros"),
        )
    )
    root = locations.path_part(folder).rstrip("/")
    found = []
    for row in listing.collect():  # file names: metadata, one row per file
        path = urlsplit(row["path"]).path
        relative = path[len(root) + 1 :] if path.startswith(root + "/") else path
        modified = EPOCH + dt.timedelta(microseconds=row["micros"])
        found.append(LandingFile(row["uri"], row["path"], relative, modified))
    return found


def ingested_files(ctx: RunContext, name: str) -> set[str]:
    """The ``_source_file`` of every bronze or quarantine row of the source."""
    found: set[str] = set()
    for key in ("bronze_events", "bronze_quarantine"):
        ref = ctx.table(key)
        if tables.exists(ctx.spark, ref):
            of_source = tables.read(ctx.spark, ref).where(F.col("source") == name)
            rows = of_source.select("_source_file").distinct().collect()  # file names
            found.update(str(r["_source_file"]) for r in rows)
    return found


JOURNAL_SCHEMA = "value string, attempt string"


def journal_folder(settings: Settings, name: str) -> tables.TableRef:
    """A small Delta table: its appends and deletes are atomic on any file system."""
    path = locations.join(settings.storage.checkpoints, f"reprocess/{name}")
    return tables.TableRef(key=f"reprocess journal of {name}", path=path)


def _journal_entries(spark: SparkSession, journal: tables.TableRef) -> set[str]:
    if not tables.exists(spark, journal):
        return set()
    entries = tables.read(spark, journal).select("value").distinct()
    return {str(r["value"]) for r in entries.collect()}  # file names of one source


def remove_previous_output(ctx: RunContext, plan: Plan) -> Removed:
    """Delete what the chosen files produced: silver keys first (found from the old bronze
    rows), then their bronze rows, then their quarantine rows."""
    spark = ctx.spark
    uris = [f.uri for f in plan.selection.files]
    of_source = F.col("source") == plan.name
    of_files = of_source & F.col("_source_file").isin(uris)
    sql_of_files = "source = :source AND array_contains(:files, _source_file)"
    files_args: dict[str, object] = {"source": plan.name, "files": uris}
    rows: dict[str, int] = {}
    dates: set[dt.date] = set()
    bronze_ref, silver_ref = ctx.table("bronze_events"), ctx.table("silver_events")
    if tables.exists(spark, bronze_ref):
        bronze = tables.read(spark, bronze_ref).where(of_source)
        keys_of_files = bronze.where(of_files).select(*SILVER_ROW).distinct()
        keys_elsewhere = bronze.where(~of_files).select(*SILVER_ROW)
        only_theirs = keys_of_files.join(keys_elsewhere, SILVER_ROW, "left_anti")
        # Distinct dates: a few hundred rows at most.
        dates = {r["event_date"] for r in keys_of_files.select("event_date").distinct().collect()}
        if tables.exists(spark, silver_ref):
            rows["silver_events"] = tables.delete_matching(
                spark, silver_ref, only_theirs, SILVER_ROW
            )
        rows["bronze_events"] = tables.delete_where(spark, bronze_ref, sql_of_files, files_args)
    quarantine_ref = ctx.table("bronze_quarantine")
    if tables.exists(spark, quarantine_ref):
        rows["bronze_quarantine"] = tables.delete_where(
            spark, quarantine_ref, sql_of_files, files_args
        )
    return Removed(rows, dates)


def add_reclassified(
    ctx: RunContext, plan: Plan, removed: Removed, clock: Stopwatch | None = None
) -> StepReport:
    """Re-read the chosen files, write them as ingest does, log, close the journal."""
    clock = clock or Stopwatch()
    settings = ctx.settings
    key = pseudonym_key(settings)
    paths = [_literal_path(f.path) for f in plan.selection.files]
    lines = ctx.spark.read.text(paths).transform(with_lineage)
    classified = lines.transform(
        classify(plan.source, settings.ingest.future_tolerance_hours, settings.ingest.max_price)
    )
    txn = (f"userprofile-reprocess:{plan.name}:{ctx.run_id}:{plan.attempt}", 0)
    written = write_classified(ctx, key, plan.name, classified, txn)
    # Dates that lost events and gained none were not rebuilt by the write.
    refresh_user_days(ctx, removed.dates - set(written.dates))
    logged = replace(
        written,
        dates=sorted(set(written.dates) | removed.dates),
        files=len(plan.selection.files),
    )
    bronze_removed = removed.rows.get("bronze_events", 0)
    quarantine_removed = removed.rows.get("bronze_quarantine", 0)
    append_log(
        ctx,
        plan.name,
        logged,
        txn,
        "reprocess",
        plan.attempt,
        removed=(bronze_removed, quarantine_removed),
    )
    tables.delete_where(ctx.spark, journal_folder(settings, plan.name), "true")
    counts = IngestCounts()
    counts.add(logged)
    report = _report(plan, removed, counts, clock)
    check_reject_share(counts, settings.ingest.max_reject_share)
    return report


def _report(plan: Plan, removed: Removed, counts: IngestCounts, clock: Stopwatch) -> StepReport:
    selection = plan.selection
    rows: dict[str, int | str] = {"source": plan.name, "files reprocessed": len(selection.files)}
    if selection.interrupted:
        rows["of them, from an unfinished reprocess"] = selection.interrupted
    if selection.gone:
        rows["ingested files gone from landing (kept)"] = selection.gone
    for table_key in ("bronze_events", "bronze_quarantine", "silver_events"):
        rows[f"removed from {table_key}"] = removed.rows.get(table_key, 0)
    return counts.step_report("reprocess", clock.seconds(), rows)


def _literal_path(path: str) -> str:
    # Spark expands glob characters in paths it reads; a file named `x[1].csv` is one file.
    return re.sub(r"([\\{}\[\]*?])", r"\\\1", path)
