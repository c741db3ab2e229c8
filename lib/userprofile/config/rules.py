"""Configured rules (tags, segment names, RFM segments, field mappings) in Spark.

The rule language and its checks live in ``userprofile.config.expressions``; here
rules become Spark columns, always through ``checked_sql``, and Spark analyses them.
"""

from __future__ import annotations

from collections.abc import Collection

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userprofile.config.expressions import checked_sql, referenced_columns
from userprofile.errors import ConfigError

__all__ = ["analysis_error", "first_matching", "referenced_columns", "rule_column"]


def rule_column(rule: str, columns: Collection[str] | None = None) -> Column:
    """A config rule as a Spark column: the checked, re-rendered SQL, never the raw text.

    Raises ConfigError if the rule is outside the rule language.
    """
    return F.expr(checked_sql(rule, columns))


def analysis_error(spark: SparkSession, schema: T.StructType | str, condition: str) -> str | None:
    """Why ``condition`` is not a rule or does not resolve as a boolean over ``schema``
    (the first line of Spark's error); None if it does. Only the plan is analysed: no
    data is read.
    """
    empty = spark.createDataFrame([], schema)
    try:
        sql = checked_sql(condition, empty.columns)
    except ConfigError as exc:
        return str(exc)
    try:
        empty.select(F.expr(sql).cast("boolean")).schema  # noqa: B018 - forces analysis
    except Exception as exc:  # parse and analysis errors both land here
        return str(exc).strip().splitlines()[0]
    return None


def first_matching(named_conditions: list[tuple[str, str]]) -> Column:
    """The name of the first (name, Spark SQL condition) that holds; null if none does."""
    name: Column = F.lit(None).cast("string")
    for label, condition in reversed(named_conditions):
        holds = F.coalesce(rule_column(condition), F.lit(False))
        name = F.when(holds, F.lit(label)).otherwise(name)
    return name
