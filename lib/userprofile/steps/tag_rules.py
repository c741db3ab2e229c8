"""Tag rules are checked against the features' schema before a step reads any data."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from userprofile.config import TagRule
from userprofile.errors import ConfigError
from userprofile.rules import analysis_error, referenced_columns


def check_tag_rules(spark: SparkSession, features: DataFrame, rules: list[TagRule]) -> None:
    """Analyse every rule against the features' schema (no data is read)."""
    for rule in rules:
        error = analysis_error(spark, features.schema, rule.rule)
        if error is not None:
            raise ConfigError(
                f"tags: rule of tag '{rule.name}' is not a valid expression over "
                f"user features: {error}"
            )


def rules_over(rules: list[TagRule], columns: list[str]) -> list[TagRule]:
    """The rules that read only ``columns`` (e.g. not model scores, before scoring)."""
    return [r for r in rules if referenced_columns(r.rule) <= set(columns)]
