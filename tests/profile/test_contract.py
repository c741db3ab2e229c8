"""The profile contract: column order, types and comments, and the README's data dictionary."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import REPO
from userprofile.errors import MissingColumnError
from userprofile.profile.contract import (
    PROFILE_COLUMNS,
    conform_to_profile_contract,
    data_dictionary_markdown,
)


def test_contract_names_missing_columns(spark: SparkSession) -> None:
    rows = spark.createDataFrame([("k",)], "user_key string")
    with pytest.raises(MissingColumnError, match="user_profile contract: missing column"):
        conform_to_profile_contract(rows)


def test_contract_orders_casts_and_documents(spark: SparkSession) -> None:
    values = {c.name: F.lit(None) for c in PROFILE_COLUMNS}
    conformed = conform_to_profile_contract(
        spark.range(1).select(*[v.alias(k) for k, v in values.items()])
    )
    assert conformed.columns == [c.name for c in PROFILE_COLUMNS]
    fields = {f.name: f for f in conformed.schema.fields}
    assert fields["segment_id"].dataType.simpleString() == "int"
    assert fields["user_key"].metadata["comment"].startswith("Pseudonymous")


def test_readme_data_dictionary_matches_the_contract() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- data-dictionary:start -->") + len("<!-- data-dictionary:start -->")
    end = readme.index("<!-- data-dictionary:end -->")
    assert readme[start:end].strip() == data_dictionary_markdown()
