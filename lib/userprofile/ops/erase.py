"""`userprofile erase`: remove users from every layer, on request, and keep them out.

Given raw user ids, the step derives their pseudonymous keys (and the
anonymous keys they logged in from), deletes their rows from bronze,
quarantine, silver and gold, adds the keys to a suppression list that ingest
consults (so re-ingesting old landing files cannot bring them back), and
records the request in an audit table without any raw id. With ``--vacuum``
it also removes the old data files, which ends time travel to before the
erasure. Landing files belong to the upstream and are not edited; saved
models hold only aggregates (centres, coefficients) and no per-user rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import uuid

from pyspark.sql import functions as F

from userprofile.errors import UserProfileError
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym_key
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch

DEFAULT_RETENTION_HOURS = 168  # Delta's own default: one week of time travel

AUDIT_SCHEMA = (
    "request_id string, requested_at timestamp, user_keys array<string>, "
    "rows_deleted map<string,bigint>, vacuumed boolean, run_id string"
)
SUPPRESSION_SCHEMA = "key string, kind string, request_id string, erased_at timestamp"


def pseudonymous_key(key: bytes, user_id: str) -> str:
    """The same HMAC-SHA256 as ``privacy.hmac_sha256_hex``, for a handful of ids on the driver."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def run_erase(ctx: RunContext, user_ids: list[str], vacuum_hours: int | None = None) -> StepReport:
    clock = Stopwatch()
    ids = sorted({u.strip() for u in user_ids if u.strip()})
    if not ids:
        raise UserProfileError("erase: no user ids given (use --user-id or --ids-file)")
    key = pseudonym_key(ctx.settings)
    user_keys = [pseudonymous_key(key, u) for u in ids]
    anonymous_keys = _linked_anonymous_keys(ctx, user_keys)
    request_id = uuid.uuid4().hex
    # Suppress first: a concurrent ingest or a crash after the deletes cannot restore them.
    _suppress(ctx, request_id, user_keys, anonymous_keys)
    deleted = _delete_everywhere(ctx, key, ids, user_keys, anonymous_keys)
    if vacuum_hours is not None:
        _vacuum(ctx, vacuum_hours)
    audit = ctx.spark.createDataFrame(
        [(request_id, _now(), user_keys, deleted, vacuum_hours is not None, ctx.run_id)],
        AUDIT_SCHEMA,
    )
    tables.append(audit, ctx.table("erasure_requests"))
    report = StepReport("erase", {"request id": request_id, "users": len(ids)}, clock.seconds())
    report.rows.update({f"deleted from {t}": n for t, n in deleted.items()})
    report.rows["vacuumed"] = (
        "yes" if vacuum_hours is not None else "no (old files remain for time travel)"
    )
    return report


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _linked_anonymous_keys(ctx: RunContext, user_keys: list[str]) -> list[str]:
    identities = ctx.table("silver_identities")
    if not tables.exists(ctx.spark, identities):
        return []
    linked = tables.read(ctx.spark, identities).where(F.col("user_key").isin(user_keys))
    # A few rows per erased user.
    return sorted(r["anonymous_key"] for r in linked.select("anonymous_key").collect())


def _delete_everywhere(
    ctx: RunContext, key: bytes, ids: list[str], user_keys: list[str], anonymous_keys: list[str]
) -> dict[str, int]:
    by_key = "array_contains(:user_keys, user_key)"
    # An anonymous id counts as the user's only on rows without a user: a shared device
    # that someone else logged in from keeps that person's rows.
    anonymous_only = "(user_key IS NULL AND array_contains(:anonymous_keys, anonymous_key))"
    raw_anonymous_only = "(user_id IS NULL AND array_contains(:raw_anonymous_ids, anonymous_id))"
    # Malformed lines have no readable ids: match the raw text as a last resort.
    unreadable = "(user_key IS NULL AND anonymous_key IS NULL AND raw_record RLIKE :mentions)"
    conditions = {
        "bronze_events": f"array_contains(:ids, user_id) OR {raw_anonymous_only}",
        "bronze_quarantine": f"{by_key} OR {anonymous_only} OR {unreadable}",
        "silver_events": f"{by_key} OR {anonymous_only}",
        "silver_users": by_key,
        "silver_identities": by_key,
        "user_features": by_key,
        "user_profile": by_key,
    }
    # Values are bound as parameters, never spliced into the SQL text. An empty list has
    # no element type in SQL: [""] matches no id (empty ids are quarantined).
    values = {
        "ids": ids,
        "user_keys": user_keys,
        "anonymous_keys": anonymous_keys or [""],
        "raw_anonymous_ids": _raw_anonymous_ids(ctx, key, anonymous_keys) or [""],
        "mentions": _mentions_any(ids),
    }
    deleted: dict[str, int] = {}
    for table_key, condition in conditions.items():
        ref = ctx.table(table_key)
        if tables.exists(ctx.spark, ref):
            used = {k: v for k, v in values.items() if f":{k}" in condition}
            deleted[table_key] = tables.delete_where(ctx.spark, ref, condition, used)
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
    now = _now()
    rows = [(k, "user", request_id, now) for k in user_keys]
    rows += [(k, "anonymous", request_id, now) for k in anonymous_keys]
    suppression = ctx.spark.createDataFrame(rows, SUPPRESSION_SCHEMA)
    tables.merge_insert_new(ctx.spark, suppression, ctx.table("erasure_suppression"), ["key"])


def _vacuum(ctx: RunContext, retention_hours: int) -> None:
    if retention_hours < DEFAULT_RETENTION_HOURS:
        # Delta refuses short retention unless told that the caller means it.
        ctx.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    for table_key in (
        "bronze_events",
        "bronze_quarantine",
        "silver_events",
        "silver_users",
        "silver_identities",
        "user_features",
        "user_profile",
    ):
        ref = ctx.table(table_key)
        if tables.exists(ctx.spark, ref):
            tables.vacuum(ctx.spark, ref, retention_hours)
