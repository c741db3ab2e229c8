"""Configured Spark SQL conditions (tags, segment names) are checked before data is read."""

from __future__ import annotations

import sqlglot
import sqlglot.errors
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sqlglot import exp


def analysis_error(spark: SparkSession, schema: T.StructType | str, condition: str) -> str | None:
    """The first line of Spark's error if ``condition`` does not parse or resolve as a
    boolean over ``schema``; None if it does. Only the plan is analysed: no data is read.
    """
    empty = spark.createDataFrame([], schema)
    try:
        empty.select(F.expr(condition).cast("boolean")).schema  # noqa: B018 - forces analysis
    except Exception as exc:  # parse and analysis errors both land here
        return str(exc).strip().splitlines()[0]
    return None


def referenced_columns(condition: str) -> set[str]:
    """Columns a Spark SQL condition reads (lambda parameters are not columns).

    Raises ``sqlglot.errors.SqlglotError`` if it does not parse.
    """
    tree = sqlglot.parse_one(condition, read="spark")
    parameters = {p.name for fn in tree.find_all(exp.Lambda) for p in fn.expressions}
    return {c.name for c in tree.find_all(exp.Column)} - parameters


def unknown_columns_or_syntax(condition: str, known: list[str]) -> str | None:
    """Without Spark: why ``condition`` cannot work over ``known`` columns, or None.

    Parsed with sqlglot's Spark dialect; catches syntax errors and references to
    columns that do not exist. Spark's own analysis (``analysis_error``) still
    runs before data is read, for types.
    """
    try:
        referenced = referenced_columns(condition)
    except sqlglot.errors.SqlglotError as exc:
        return f"does not parse: {str(exc).splitlines()[0]}"
    unknown = sorted(referenced - set(known))
    if unknown:
        return f"unknown column(s) {', '.join(unknown)}"
    return None


def first_matching(named_conditions: list[tuple[str, str]]) -> Column:
    """The name of the first (name, Spark SQL condition) that holds; null if none does."""
    name: Column = F.lit(None).cast("string")
    for label, condition in reversed(named_conditions):
        name = F.when(F.coalesce(F.expr(condition), F.lit(False)), F.lit(label)).otherwise(name)
    return name
