"""Errors a user can act on. The CLI prints them as one line, without a traceback."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable


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


# A quoted literal in an error message: Spark quotes the offending value ('...'),
# Python's own messages too (invalid literal for int(): 'abc').
_QUOTED_VALUE = re.compile(r"'(?:[^'\\\n]|\\.)*'")
REDACTED = "'<redacted>'"


def scrubbed(exc: BaseException, secret_vars: Iterable[str] = ()) -> str:
    """One line that says what failed without the values it failed on.

    Stored in ``pipeline_runs.error`` and printed by the CLI, both read by people who
    may not see the data. Config errors are kept as written (they name files and keys,
    not data); other messages lose quoted literals, the values of the environment
    variables ``secret_vars`` and all but their first line (Spark appends plans and
    stack traces).
    """
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if not isinstance(exc, ConfigError):
        first = _QUOTED_VALUE.sub(REDACTED, first)
    for var in secret_vars:
        secret = os.environ.get(var, "")
        if secret:
            first = first.replace(secret, "<secret>")
    text = first if isinstance(exc, UserProfileError) else f"{type(exc).__name__}: {first}"
    return text[:1000]
