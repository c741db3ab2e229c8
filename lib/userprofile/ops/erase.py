"""`userprofile erase`: remove users from every layer, on request, and keep them out.

Given raw user ids, the step derives their pseudonymous keys (and the
anonymous keys they logged in from), adds the keys to a suppression list that
ingest consults (so re-ingesting old landing files cannot bring them back),
deletes their rows from bronze, quarantine, silver and gold and from every
export in the export manifest, then purges and vacuums the tables: deletion
vectors are rewritten away and files older than ``privacy.erase_retention_hours``
(0 by default) are removed, so time travel cannot read the rows either. The
request is audited without any raw id.

What stays: landing files belong to the upstream and are not edited; saved
models hold only aggregates. Delta's log keeps per-file min/max statistics and
the conditions of its commits: deletes here are MERGEs against the ids (their
logged condition names columns only), and raw id columns are kept out of the
statistics (``keep_raw_ids_out_of_stats``). Log entries written before that
property was set, and the pseudonymous keys in silver/gold statistics, remain
until Delta's log retention (``delta.logRetentionDuration``, 30 days) expires.
"""

from __future__ import annotations

import re
import uuid

from pyspark.sql import functions as F

from userprofile.errors import UserProfileError
from userprofile.ingest.privacy import RAW_COLUMNS, hmac_sha256_hex, pseudonym, pseudonym_key
from userprofile.io import table_stats, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now
from userprofile.ops.audience import scrub_exports

AUDIT_SCHEMA = (
    "request_id string, requested_at timestamp, user_keys array<string>, "
    "rows_deleted map<string,bigint>, vacuumed boolean, run_id string, "
    "retention_hours int, exports_rewritten array<string>"
)
SUPPRESSION_SCHEMA = "key string, kind string, request_id string, erased_at timestamp"


# A source row of a delete is (kind, value); each condition joins one kind to the table t.
BY_KEY = "t.user_key = s.value"
# An anonymous id counts as the user's only on rows without a user: a shared device
# that someone else logged in from keeps that person's rows.
ANONYMOUS_ONLY = "t.user_key IS NULL AND t.anonymous_key = s.value"
RAW_ANONYMOUS_ONLY = "t.user_id IS NULL AND t.anonymous_id = s.value"
# Malformed lines have no readable ids: match the raw text as a last resort.
UNREADABLE = "t.user_key IS NULL AND t.anonymous_key IS NULL AND t.raw_record RLIKE s.value"
DELETES: dict[str, dict[str, str]] = {
    "bronze_events": {"ids": "t.user_id = s.value", "raw_anonymous_ids": RAW_ANONYMOUS_ONLY},
    "bronze_quarantine": {
        "user_keys": BY_KEY,
        "anonymous_keys": ANONYMOUS_ONLY,
        "mentions": UNREADABLE,
    },
    "silver_events": {"user_keys": BY_KEY, "anonymous_keys": ANONYMOUS_ONLY},
    "silver_user_day": {"user_keys": BY_KEY, "anonymous_keys": ANONYMOUS_ONLY},
    "silver_users": {"user_keys": BY_KEY},
    "silver_identities": {"user_keys": BY_KEY},
    "user_features": {"user_keys": BY_KEY},
    "user_profile": {"user_keys": BY_KEY},
}


def run_erase(ctx: RunContext, user_ids: list[str], vacuum_hours: int | None = None) -> StepReport:
    """Erase the users; ``vacuum_hours`` overrides ``privacy.erase_retention_hours``."""
    clock = Stopwatch()
    ids = sorted({u.strip() for u in user_ids if u.strip()})
    if not ids:
        raise UserProfileError("erase: no user ids given (use --user-id or --ids-file)")
    retention = ctx.settings.privacy.erase_retention_hours if vacuum_hours is None else vacuum_hours
    key = pseudonym_key(ctx.settings)
    user_keys = [pseudonym(key, u) for u in ids]
    request_id = uuid.uuid4().hex
    # Suppress first: a concurrent ingest or a crash after the deletes cannot restore them.
    # The users before their devices: a link a batch adds meanwhile is then either seen
    # here or removed by that batch's own re-check (ingest.erasures).
    _suppress(ctx, request_id, user_keys, [])
    anonymous_keys = _linked_anonymous_keys(ctx, user_keys)
    _suppress(ctx, request_id, [], anonymous_keys)
    # Before the deletes: a deletion vector's commit restates the statistics of its file.
    keep_raw_ids_out_of_stats(ctx)
    values = {
        "ids": ids,
        "user_keys": user_keys,
        "anonymous_keys": anonymous_keys,
        "raw_anonymous_ids": _raw_anonymous_ids(ctx, key, anonymous_keys),
        "mentions": [_mentions_any(ids)],
    }
    deleted = _delete_everywhere(ctx, values)
    rewritten = scrub_exports(ctx, key, user_keys)
    cleaned = _purge_and_vacuum(ctx, retention)
    audit = ctx.spark.createDataFrame(
        [(request_id, utc_now(), user_keys, deleted, True, ctx.run_id, retention, rewritten)],
        AUDIT_SCHEMA,
    )
    # add_columns: audit tables written before retention and exports were recorded.
    tables.append(audit, ctx.table("erasure_requests"), add_columns=True)
    report = StepReport("erase", {"request id": request_id, "users": len(ids)}, clock.seconds())
    report.rows.update({f"deleted from {t}": n for t, n in deleted.items()})
    report.rows["exports rewritten"] = len(rewritten)
    report.rows["purged and vacuumed"] = f"{len(cleaned)} tables, history kept {retention} h"
    return report


def keep_raw_ids_out_of_stats(ctx: RunContext) -> None:
    """Delta keeps no min/max statistics of the raw id and raw text columns of the
    existing bronze tables from now on (files written or rewritten later)."""
    for table_key, columns in RAW_COLUMNS.items():
        ref = ctx.table(table_key)
        if tables.exists(ctx.spark, ref):
            table_stats.exclude_from_stats(ctx.spark, ref, columns)


def _linked_anonymous_keys(ctx: RunContext, user_keys: list[str]) -> list[str]:
    identities = ctx.table("silver_identities")
    if not tables.exists(ctx.spark, identities):
        return []
    linked = tables.read(ctx.spark, identities).where(F.col("user_key").isin(user_keys))
    # A few rows per erased user.
    return sorted(r["anonymous_key"] for r in linked.select("anonymous_key").collect())


def _delete_everywhere(ctx: RunContext, values: dict[str, list[str]]) -> dict[str, int]:
    """One MERGE per table that holds user rows; rows deleted per table."""
    deleted: dict[str, int] = {}
    for table_key, conditions in DELETES.items():
        ref = ctx.table(table_key)
        if tables.exists(ctx.spark, ref):
            deleted[table_key] = tables.delete_by_values(ctx.spark, ref, conditions, values)
    return deleted


def _raw_anonymous_ids(ctx: RunContext, key: bytes, anonymous_keys: list[str]) -> list[str]:
    """The raw anonymous ids behind the linked anonymous keys, from bronze rows without a user."""
    ref = ctx.table("bronze_events")
    if not anonymous_keys or not tables.exists(ctx.spark, ref):
        return []
    candidates = tables.read(ctx.spark, ref).where(F.col("user_id").isNull())
    hashed = candidates.select("anonymous_id").distinct()
    linked = hashed.where(hmac_sha256_hex(key, F.col("anonymous_id")).isin(anonymous_keys))
    return sorted(str(r["anonymous_id"]) for r in linked.collect())  # a few per erased user


def _mentions_any(ids: list[str]) -> str:
    """A regex: the raw record holds one of the ids as a whole token (not inside a longer id)."""
    alternatives = "|".join(re.escape(i) for i in ids)
    return f"(^|[^A-Za-z0-9_-])({alternatives})($|[^A-Za-z0-9_-])"


def _suppress(
    ctx: RunContext, request_id: str, user_keys: list[str], anonymous_keys: list[str]
) -> None:
    now = utc_now()
    rows = [(k, "user", request_id, now) for k in user_keys]
    rows += [(k, "anonymous", request_id, now) for k in anonymous_keys]
    suppression = ctx.spark.createDataFrame(rows, SUPPRESSION_SCHEMA)
    tables.merge_insert_new(ctx.spark, suppression, ctx.table("erasure_suppression"), ["key"])


def _purge_and_vacuum(ctx: RunContext, retention_hours: int) -> list[str]:
    """Every table that can hold the users' rows loses its deletion vectors and old files."""
    cleaned = []
    for table_key in DELETES:
        ref = ctx.table(table_key)
        if tables.exists(ctx.spark, ref):
            tables.purge_and_vacuum(ctx.spark, ref, retention_hours)
            cleaned.append(table_key)
    return cleaned
