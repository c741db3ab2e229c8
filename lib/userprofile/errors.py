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


RERUN = "every table is at its last committed version; run the same command again"
# Causes buried in a JVM error's text (its cause chain) that the person re-running a job
# can act on; each says what happened and what to do, naming the marker it found.
KNOWN_CAUSES = (
    (
        re.compile(r"No space left on device|Disk quota exceeded"),
        "the storage is full ({}): free space; " + RERUN,
    ),
    (
        re.compile(r"Read-only file system"),
        "the storage refused a write ({}): make it writable; " + RERUN,
    ),
    (
        re.compile(
            r"Concurrent(?:Append|DeleteRead|DeleteDelete|Transaction|Write)Exception"
            r"|MetadataChangedException|ProtocolChangedException"
            r"|Multiple streaming queries are concurrently using|Concurrent update to the"
        ),
        "another run wrote the same table at the same time ({}); this run stopped without "
        "committing its step: when the other run has finished, " + RERUN + " if it is needed",
    ),
)


def known_cause(exc: BaseException) -> str | None:
    """The plain-words cause of a storage or concurrency failure anywhere in ``exc``'s chain."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        for pattern, message in KNOWN_CAUSES:
            found = pattern.search(text)
            if found:
                return message.format(found.group(0))
        seen = seen.__cause__ or seen.__context__
    return None


def scrubbed(exc: BaseException, secret_vars: Iterable[str] = ()) -> str:
    """One line that says what failed without the values it failed on.

    Stored in ``pipeline_runs.error`` and printed by the CLI, both read by people who
    may not see the data. Config errors are kept as written (they name files and keys,
    not data); a storage or concurrency failure is said in plain words (``KNOWN_CAUSES``);
    other messages lose quoted literals, the values of the environment
    variables ``secret_vars`` and all but their first line (Spark appends plans and
    stack traces).
    """
    cause = None if isinstance(exc, UserProfileError) else known_cause(exc)
    if cause is not None:
        return cause
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
