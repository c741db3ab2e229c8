"""A batch's shuffles are sized for its rows, and the session's setting comes back after."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from userprofile.io.session import (
    ROWS_PER_SHUFFLE_PARTITION,
    SHUFFLE_PARTITIONS,
    partitions_for,
    shuffle_sized_for,
)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (0, 8),
        (8 * ROWS_PER_SHUFFLE_PARTITION, 8),
        (8 * ROWS_PER_SHUFFLE_PARTITION + 1, 9),
        (20 * ROWS_PER_SHUFFLE_PARTITION, 20),
    ],
)
def test_more_partitions_only_when_the_rows_need_them(rows: int, expected: int) -> None:
    assert partitions_for(rows, configured=8) == expected


def fail_inside(spark: SparkSession, rows: int, seen: list[str | None]) -> None:
    with shuffle_sized_for(spark, rows):
        seen.append(spark.conf.get(SHUFFLE_PARTITIONS))
        raise RuntimeError("inside")


def test_the_setting_is_restored_after_the_block_even_when_it_fails(spark: SparkSession) -> None:
    before = spark.conf.get(SHUFFLE_PARTITIONS)
    seen: list[str | None] = []
    rows = (int(str(before)) + 3) * ROWS_PER_SHUFFLE_PARTITION
    with pytest.raises(RuntimeError, match="inside"):
        fail_inside(spark, rows, seen)
    assert seen == [str(int(str(before)) + 3)]
    assert spark.conf.get(SHUFFLE_PARTITIONS) == before
