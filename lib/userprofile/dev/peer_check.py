"""Are a peer's features the product's? Per column, the users whose values differ.

The bench times peers only for the work they share with the features step, so it
checks that work: each peer's ``CORE_COLUMNS`` (written to Parquet by the peer)
against the product's ``user_features`` rows of the same snapshot, joined on
``user_key`` in DuckDB (streaming; nothing per user is collected but a few examples).
Money is compared to the cent (engines round a half cent differently); the rest exactly,
null equal to null.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from userprofile.dev.peer_duckdb import _parquet
from userprofile.dev.peers import CORE_COLUMNS, MONEY_COLUMNS

CENT = 0.01 + 1e-9
EXAMPLES = 3


@dataclass
class FeatureCheck:
    """The outcome of comparing one peer's features with the product's."""

    peer: str
    product_users: int = 0
    peer_users: int = 0
    only_product: int = 0
    only_peer: int = 0
    columns: list[str] = field(default_factory=list)
    # column -> users (present on both sides) whose values differ; only columns that do
    mismatches: dict[str, int] = field(default_factory=dict)
    # column (or "only_product" / "only_peer") -> up to EXAMPLES (user_key, product, peer)
    examples: dict[str, list[list[Any]]] = field(default_factory=dict)
    error: str | None = None

    @property
    def equal(self) -> bool:
        return (
            self.error is None
            and not self.mismatches
            and self.only_product == 0
            and self.only_peer == 0
            and self.product_users > 0
        )

    def lines(self) -> list[str]:
        head = f"        check {self.peer} vs product user_features:"
        if self.error is not None:
            return [f"{head} not checked ({self.error})"]
        if self.equal:
            return [f"{head} equal ({len(self.columns) - 1} columns, {self.product_users:,} users)"]
        lines = [
            f"{head} DIFFERENT: {self.product_users:,} product users, {self.peer_users:,} peer "
            f"users ({self.only_product:,} only in product, {self.only_peer:,} only in peer)"
        ]
        for column, count in self.mismatches.items():
            example = self._eg(column)
            lines.append(f"          {column:<22} {count:>9,} users differ  e.g. {example}")
        for side in ("only_product", "only_peer"):
            if self.examples.get(side):
                lines.append(f"          {side:<22} e.g. {self._eg(side)}")
        same = [c for c in self.columns[1:] if c not in self.mismatches]
        lines.append(f"          equal on {len(same)} columns: {', '.join(same)}")
        return lines

    def _eg(self, column: str) -> str:
        return "; ".join(
            f"{str(k)[:12]}… product={p} peer={q}" for k, p, q in self.examples.get(column, [])
        )

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "equal": self.equal}


def product_feature_files(table: Path, as_of: dt.date) -> list[str]:
    """The Parquet files of the ``user_features`` snapshot ``as_of`` (current version)."""
    from deltalake import DeltaTable

    return list(
        DeltaTable(str(table)).file_uris(partition_filters=[("snapshot_date", "=", str(as_of))])
    )


def pseudonymised(peer_file: Path, key: bytes) -> Any:
    """A peer's features keyed by raw ``user_id`` (pandas) -> by ``user_key`` (the product's
    HMAC-SHA256 of the id), as a pandas frame: one hash per user, on the driver."""
    import pandas as pd

    frame = pd.read_parquet(peer_file)
    frame["user_key"] = [
        None if i is None else hmac.new(key, str(i).encode("utf-8"), hashlib.sha256).hexdigest()
        for i in frame.pop("user_id")
    ]
    return frame


def check_features(
    peer: str, product_files: Sequence[str], peer_features: Path | Any
) -> FeatureCheck:
    """Compare ``peer_features`` (a Parquet path or a pandas frame) with the product's rows."""
    import duckdb

    result = FeatureCheck(peer)
    with duckdb.connect() as db:
        if isinstance(peer_features, Path):
            db.execute(f"CREATE VIEW peer AS SELECT * FROM {_parquet([str(peer_features)])}")
        else:
            db.register("peer", peer_features)
        db.execute(f"CREATE VIEW product AS SELECT * FROM {_parquet(product_files)}")
        have = [
            {r[0] for r in db.execute(f"DESCRIBE SELECT * FROM {t}").fetchall()}
            for t in ("product", "peer")
        ]
        result.columns = [c for c in CORE_COLUMNS if c in have[0] and c in have[1]]
        joined = "FROM product p FULL JOIN peer q ON p.user_key = q.user_key"
        both = "p.user_key IS NOT NULL AND q.user_key IS NOT NULL"
        differ = {c: f"{both} AND NOT {_same(c)}" for c in result.columns[1:]}
        counts = [
            "count(p.user_key)",
            "count(q.user_key)",
            "count(*) FILTER (WHERE q.user_key IS NULL)",
            "count(*) FILTER (WHERE p.user_key IS NULL)",
            *[f"count(*) FILTER (WHERE {test})" for test in differ.values()],
        ]
        row = db.execute(f"SELECT {', '.join(counts)} {joined}").fetchone()
        assert row is not None
        result.product_users, result.peer_users, result.only_product, result.only_peer = row[:4]
        result.mismatches = {c: int(n) for c, n in zip(differ, row[4:], strict=True) if n}
        tests = {
            **{c: (c, differ[c]) for c in result.mismatches},
            "only_product": ("user_key", "q.user_key IS NULL"),
            "only_peer": ("user_key", "p.user_key IS NULL"),
        }
        for name, (column, test) in tests.items():
            examples = db.execute(
                f"SELECT coalesce(p.user_key, q.user_key), p.{column}, q.{column} {joined} "
                f"WHERE {test} ORDER BY 1 LIMIT {EXAMPLES}"
            ).fetchall()
            if examples:
                result.examples[name] = [list(e) for e in examples]
    return result


def _same(column: str) -> str:
    p, q = f"p.{column}", f"q.{column}"
    if column in MONEY_COLUMNS:
        return f"coalesce(({p} IS NULL AND {q} IS NULL) OR abs({p} - {q}) <= {CENT}, FALSE)"
    return f"({p} IS NOT DISTINCT FROM {q})"
