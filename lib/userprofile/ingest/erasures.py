"""Erased users at ingest: left out before a write, and removed again if erased meanwhile.

``userprofile erase`` adds a user's keys to the suppression list first, then deletes
their rows everywhere. A batch that read the list before the erasure began writes
the user's rows back, possibly after erase's deletes: so, after its writes, the
batch reads the list afresh and deletes the rows of ids erased since its first read.
Why every interleaving ends with no rows: erase commits the suppression at t1
and its deletes read the tables at t2 > t1; the batch commits its writes at t3
and re-reads the list at t4 > t3. If t4 >= t1, the re-read sees the user and the
batch deletes the rows; otherwise t3 < t4 < t1 < t2, and erase's deletes see them.

Each read asks which of the batch's ids the list holds (a handful at most, usually
none) and keeps them on the driver: a Delta read is re-evaluated by every action,
so a DataFrame of the list would not tell what the batch's writes saw.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from userprofile.ingest.privacy import hmac_sha256_hex
from userprofile.io import tables
from userprofile.io.context import RunContext, utc_now

# Rows of erased ids in each table a batch writes, per kind of id: the values are rows of
# a MERGE's source, never in its text (Delta logs a DELETE's condition with its values).
# An anonymous id counts as the user's only on rows without a user (as `erase` has it).
_BY_KEYS = {
    "user_keys": "t.user_key = s.value",
    "anonymous_keys": "t.user_key IS NULL AND t.anonymous_key = s.value",
}
_ROWS_OF_ERASED: dict[str, dict[str, str]] = {
    "bronze_events": {
        "user_ids": "t.user_id = s.value",
        "anonymous_ids": "t.user_id IS NULL AND t.anonymous_id = s.value",
    },
    "bronze_quarantine": _BY_KEYS,
    "silver_events": _BY_KEYS,
    "silver_user_day": _BY_KEYS,
    "silver_identities": {"user_keys": "t.user_key = s.value"},
}


@dataclass(frozen=True)
class Erased:
    """Ids of a batch that are on the suppression list: raw (bronze) and keyed (the rest).

    ``users``: user_id -> user_key; ``anonymous``: anonymous_id -> anonymous_key, as the
    id of rows without a user; ``requests``: user_key -> the erasure request.
    """

    users: dict[str, str] = field(default_factory=dict)
    anonymous: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.users or self.anonymous)

    def since(self, before: Erased) -> Erased:
        """The ids erased after ``before`` was read."""
        return Erased(
            {k: v for k, v in self.users.items() if k not in before.users},
            {k: v for k, v in self.anonymous.items() if k not in before.anonymous},
            self.requests,
        )


def erased_in(ctx: RunContext, key: bytes, rows: DataFrame) -> Erased:
    """The ids of ``rows`` that the suppression list holds now (a fresh read)."""
    ref = ctx.table("erasure_suppression")
    if not tables.exists(ctx.spark, ref):
        return Erased()
    ids = (
        rows.select("user_id", "anonymous_id")
        .distinct()
        .withColumn("user_key", hmac_sha256_hex(key, F.col("user_id")))
        .withColumn("anonymous_key", hmac_sha256_hex(key, F.col("anonymous_id")))
    )
    suppressed = tables.read(ctx.spark, ref)

    def keys(kind: str, column: str) -> DataFrame:
        listed = suppressed.where(F.col("kind") == kind)
        return F.broadcast(listed.select(F.col("key").alias(column), "request_id"))

    by_user = ids.join(keys("user", "user_key"), "user_key")
    by_device = ids.where(F.col("user_id").isNull()).join(
        keys("anonymous", "anonymous_key"), "anonymous_key"
    )
    hits = by_user.unionByName(by_device).collect()  # the batch's erased ids: a handful at most
    users = [r for r in hits if r["user_id"] is not None]
    return Erased(
        {str(r["user_id"]): str(r["user_key"]) for r in users},
        {str(r["anonymous_id"]): str(r["anonymous_key"]) for r in hits if r["user_id"] is None},
        {str(r["user_key"]): str(r["request_id"]) for r in users},
    )


def without(rows: DataFrame, erased: Erased) -> DataFrame:
    """``rows`` without the erased ids': a user's rows, an anonymous id's rows without a user."""
    if not erased:
        return rows
    dropped: Column = _isin("user_id", erased.users) | (
        F.col("user_id").isNull() & _isin("anonymous_id", erased.anonymous)
    )
    return rows.where(~dropped)


def _isin(column: str, values: Collection[str]) -> Column:
    # Never null: a null id is not erased (and `NOT null` would drop the row).
    return F.coalesce(F.col(column).isin(sorted(values)), F.lit(False)) if values else F.lit(False)


def remove_erased_meanwhile(ctx: RunContext, key: bytes, rows: DataFrame, before: Erased) -> int:
    """Delete the rows of ids erased after ``before`` was read; ``rows``: the batch's rows.

    Anonymous ids that rows without a user carry and that the identity map links to a
    newly erased user go with them, and onto the suppression list, as ``erase`` would
    have done had it seen the link. Returns the rows deleted.
    """
    erased = erased_in(ctx, key, rows).since(before)
    if not erased:
        return 0
    linked = _linked_anonymous(ctx, key, rows, erased)
    _suppress(ctx, linked)
    anonymous = {**erased.anonymous, **{str(r["anonymous_id"]): str(r["k"]) for r in linked}}
    values = {
        "user_ids": sorted(erased.users),
        "user_keys": sorted(erased.users.values()),
        "anonymous_ids": sorted(anonymous),
        "anonymous_keys": sorted(anonymous.values()),
    }
    deleted = 0
    for table_key, conditions in _ROWS_OF_ERASED.items():
        ref = ctx.table(table_key)
        if tables.exists(ctx.spark, ref):
            deleted += tables.delete_by_values(ctx.spark, ref, conditions, values)
    return deleted


def _linked_anonymous(ctx: RunContext, key: bytes, rows: DataFrame, erased: Erased) -> list[Row]:
    """(anonymous_id, k, request_id) of the batch's rows without a user whose anonymous key
    the identity map links to an erased user."""
    ref = ctx.table("silver_identities")
    requests = {k: erased.requests[k] for k in erased.users.values()}
    if not requests or not tables.exists(ctx.spark, ref):
        return []
    erased_users = ctx.spark.createDataFrame(
        sorted(requests.items()), "user_key string, request_id string"
    )
    links = tables.read(ctx.spark, ref).join(F.broadcast(erased_users), "user_key")
    devices = (
        rows.where(F.col("user_id").isNull() & F.col("anonymous_id").isNotNull())
        .select("anonymous_id")
        .distinct()
        .withColumn("k", hmac_sha256_hex(key, F.col("anonymous_id")))
    )
    linked = devices.join(links, devices["k"] == links["anonymous_key"])
    return linked.select("anonymous_id", "k", "request_id").collect()  # a few per erased user


def _suppress(ctx: RunContext, linked: list[Row]) -> None:
    """Add linked anonymous keys to the suppression list (its columns, as `erase` writes them)."""
    if not linked:
        return
    rows = [(str(r["k"]), "anonymous", str(r["request_id"]), utc_now()) for r in linked]
    suppression = ctx.spark.createDataFrame(
        rows, "key string, kind string, request_id string, erased_at timestamp"
    )
    tables.merge_insert_new(ctx.spark, suppression, ctx.table("erasure_suppression"), ["key"])


def erased_user_keys(ctx: RunContext, users: DataFrame) -> set[str]:
    """The ``user_key`` values of ``users`` that the suppression list holds now (a fresh read)."""
    ref = ctx.table("erasure_suppression")
    if not tables.exists(ctx.spark, ref):
        return set()
    listed = tables.read(ctx.spark, ref).where(F.col("kind") == "user")
    found = users.join(F.broadcast(listed.select(F.col("key").alias("user_key"))), "user_key")
    return {str(r["user_key"]) for r in found.select("user_key").distinct().collect()}


def without_user_keys(users: DataFrame, keys: Collection[str]) -> DataFrame:
    return users.where(~_isin("user_key", keys)) if keys else users


def remove_users_erased_meanwhile(ctx: RunContext, users: DataFrame, before: set[str]) -> int:
    """Delete from silver_users the ``users`` erased after ``before`` was read (CRM rows)."""
    keys = sorted(erased_user_keys(ctx, users) - before)
    if not keys:
        return 0
    conditions = {"user_keys": "t.user_key = s.value"}
    silver_users = ctx.table("silver_users")
    return tables.delete_by_values(ctx.spark, silver_users, conditions, {"user_keys": keys})
