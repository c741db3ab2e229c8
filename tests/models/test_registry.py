"""The model registry: when a stored model is due for retraining."""

from __future__ import annotations

import datetime as dt

import pytest

from userprofile.models.registry import is_due


@pytest.mark.parametrize(
    ("trained_on", "as_of", "every", "due"),
    [
        (dt.date(2026, 5, 1), dt.date(2026, 5, 7), 7, False),
        (dt.date(2026, 5, 1), dt.date(2026, 5, 8), 7, True),
        (dt.date(2026, 5, 1), dt.date(2026, 5, 1), 0, True),
        (dt.date(2026, 5, 1), dt.date(2026, 5, 2), 1, True),
    ],
)
def test_retraining_is_due_after_the_configured_days(
    trained_on: dt.date, as_of: dt.date, every: int, due: bool
) -> None:
    assert is_due(trained_on, as_of, every) is due
