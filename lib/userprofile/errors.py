"""Errors a user can act on. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class UserProfileError(Exception):
    """Base class for errors caused by input, config or data, not by a bug."""


class ConfigError(UserProfileError):
    """The configuration is invalid; the message names the file and the key."""


class MissingColumnError(UserProfileError):
    """A DataFrame handed between layers lacks columns the next step needs."""

    def __init__(self, where: str, missing: list[str]) -> None:
        super().__init__(f"{where}: missing column(s) {', '.join(sorted(missing))}")
        self.missing = missing


class DataQualityError(UserProfileError):
    """Input data failed a quality gate (e.g. too many rejected records)."""


class MissingInputError(UserProfileError):
    """A step needs data that an earlier step has not produced yet."""


class NotEnoughHistoryError(MissingInputError):
    """Too few days of events to train the models yet: time, not a step, will fix it.

    ``userprofile train`` fails with it; the pipeline records train as skipped and
    writes the profile without the model columns.
    """


class LeakageError(UserProfileError):
    """Training data shows information from the label window: the model would be a lie."""
