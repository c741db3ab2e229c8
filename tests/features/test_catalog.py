"""The feature catalogue names exactly the columns the features produce."""

from __future__ import annotations

from pyspark.sql import DataFrame

from tests.features.conftest import AS_OF
from userprofile.features.build import user_features
from userprofile.features.catalog import feature_columns


def test_columns_are_the_catalogue(events: DataFrame, users: DataFrame) -> None:
    """Config checks rely on the catalogue: it must name exactly what the features produce."""
    build = user_features(AS_OF, [7, 30, 90], night_hours=[22, 23])
    assert build(events, users).columns == feature_columns([7, 30, 90])
