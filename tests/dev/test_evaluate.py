"""Evaluation against the planted truth: the adjusted Rand index on known contingencies."""

from __future__ import annotations

import pytest

from userprofile.dev.evaluate import adjusted_rand_index


def test_adjusted_rand_index_known_values() -> None:
    same = [("a", 1, 5), ("b", 2, 5)]
    assert adjusted_rand_index(same) == 1.0
    relabelled = [("x", 1, 5), ("y", 2, 5)]
    assert adjusted_rand_index(relabelled) == 1.0
    # Hubert and Arabie's formula by hand: clusters {a: 3, b: 3}, classes {1: 3, 2: 3},
    # cells a1=2, a2=1, b1=1, b2=2 -> index 2, expected 6*6/15 = 2.4, max 6.
    assert adjusted_rand_index([("a", 1, 2), ("a", 2, 1), ("b", 1, 1), ("b", 2, 2)]) == (
        pytest.approx((2 - 2.4) / (6 - 2.4))
    )
