"""Event sources: where a source's files land, their layout, and how records map to our fields.

Layouts (``format``):

- ``json``: one JSON object per line; ``fields`` renames keys (our field -> their key).
- ``csv``: a delimited export with quoting (one-character delimiter, optional header).
- ``text``: columns split by a regular expression (default: any run of whitespace),
  for whitespace-separated or fixed-layout text; no quoting.
- ``regex``: each line matched by a Java regular expression whose named groups
  (``(?<name>...)``) are the columns, e.g. a web server's access log.

For ``csv``, ``text`` and ``regex``, ``fields`` maps our field to a Spark SQL
expression over the layout's columns, which are all strings (use ``try_cast``);
a field not mapped is null. Expressions are limited to the rule language of
``userprofile.config.expressions`` (checked at load, re-rendered before Spark runs them).

Event identity: a source whose records carry an id maps it to ``event_id`` (JSON
sources read the ``event_id`` key by default). A source without one gets
``event_identity: line`` (the default for csv/text/regex without an ``event_id``
mapping): an event is a line's content plus how many times that same line occurred
before it in its file. So two identical lines in one file are two events (a
customer buying the same item twice the same day), while a file delivered again,
under any name, gives the same ids and is stored once; the same line in two
different files is taken as a re-delivery and stored once.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from userprofile.config.strict import StrictModel
from userprofile.ingest.fields import EVENT_FIELDS

# Java group names are letters and digits, starting with a letter (no underscore).
_JAVA_GROUP = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")
_ANY_GROUP = re.compile(r"\(\?<([^>=!][^>]*)>")
# Columns the readers add themselves: a layout column may not take these names.
RESERVED_COLUMNS = (
    "value",
    "raw_record",
    "_source_file",
    "_file_time",
    "_parts",
    "_corrupt_record",
)


class CsvLayout(StrictModel):
    """An export's columns, in file order: an explicit schema, never inferred."""

    columns: list[str] = Field(min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True


class TextLayout(StrictModel):
    """Columns split by a regular expression; a line with another number of columns is malformed."""

    columns: list[str] = Field(min_length=1)
    # A Java regular expression; default: any run of spaces or tabs (leading ones ignored).
    delimiter: str = Field(default=r"\s+", min_length=1)
    # true: a line whose columns are exactly the column names is a header, not a record.
    header: bool = False

    @field_validator("delimiter")
    @classmethod
    def _regex(cls, value: str) -> str:
        python_pattern(value)
        return value


class RegexLayout(StrictModel):
    """A Java regular expression matched against the whole line; named groups are columns."""

    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _named_groups(cls, value: str) -> str:
        bad = [n for n in _ANY_GROUP.findall(value) if not _JAVA_GROUP.match(f"(?<{n}>")]
        if bad:
            raise ValueError(
                f"group name(s) {', '.join(bad)} are not valid in Java patterns: "
                "letters and digits only, starting with a letter"
            )
        if not _JAVA_GROUP.search(value):
            raise ValueError("the pattern has no named group such as (?<user>\\S+)")
        python_pattern(value)
        return value

    @property
    def columns(self) -> list[str]:
        """Group names in the order of their group numbers."""
        return list(python_pattern(self.pattern).groupindex)

    def group_numbers(self) -> dict[str, int]:
        return dict(python_pattern(self.pattern).groupindex)


def python_pattern(java: str) -> re.Pattern[str]:
    """Compile a Java pattern with Python's ``re`` (named groups translated) to check it early."""
    try:
        return re.compile(_JAVA_GROUP.sub(r"(?P<\1>", java))
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None


class EventSource(StrictModel):
    """One landing folder of event logs and how its records map to our event fields."""

    enabled: bool = True
    format: Literal["json", "csv", "text", "regex"] = "json"
    # Folder under storage.landing, or an absolute path / URI.
    path: str
    csv: CsvLayout | None = None
    text: TextLayout | None = None
    regex: RegexLayout | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    # Value mappings applied after `fields`, e.g. {event_type: {view: product_view}}.
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Spark datetime pattern of event_ts; default: ISO-8601.
    timestamp_format: str | None = None
    # Zone of timestamps that carry none (e.g. Europe/London); default: UTC.
    timezone: str | None = None
    # date: the source has dates without a time of day; time-of-day features are null
    # for its events (not midnight) and the date is taken as it is (no zone shift).
    timestamp_precision: Literal["time", "date"] = "time"
    # field: `event_id` comes from the record; line: from the line and its repeats in
    # its file (see the module docstring). Default: line for csv/text/regex sources
    # that map no event_id, field otherwise.
    event_identity: Literal["field", "line"] | None = None
    # false: a record with an anonymous id but no user id is kept as anonymous.
    require_user_id: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> EventSource:
        unknown = sorted((set(self.fields) | set(self.values)) - set(EVENT_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown event field(s) {', '.join(unknown)}; ours are {', '.join(EVENT_FIELDS)}"
            )
        for layout in ("csv", "text", "regex"):
            given = getattr(self, layout) is not None
            if self.format == layout and not given:
                raise ValueError(f"a {layout} source needs `{layout}:` ({_LAYOUT_HINT[layout]})")
            if self.format != layout and given:
                raise ValueError(f"`{layout}` options apply to {layout} sources only")
        if self.event_identity == "line" and "event_id" in self.fields:
            raise ValueError("event_identity is `line` but fields maps event_id: choose one")
        if self.timestamp_precision == "date" and self.timezone:
            raise ValueError("timezone has no effect with timestamp_precision: date; remove it")
        if self.columns is not None:
            self._check_mapped_columns(self.columns)
        return self

    def _check_mapped_columns(self, columns: list[str]) -> None:
        """What every csv/text/regex source must map, or all its lines would be rejected."""
        reserved = sorted(set(columns) & set(RESERVED_COLUMNS))
        if reserved:
            raise ValueError(f"column name(s) {', '.join(reserved)} are reserved: rename them")
        missing = [f for f in ("event_ts", "event_type") if f not in self.fields]
        if not {"user_id", "anonymous_id"} & set(self.fields):
            missing.append("user_id or anonymous_id")
        if self.identity == "field" and "event_id" not in self.fields:
            missing.append("event_id (or event_identity: line)")
        if missing:
            raise ValueError(f"fields must map {', '.join(missing)}")

    @property
    def identity(self) -> Literal["field", "line"]:
        if self.event_identity is not None:
            return self.event_identity
        return "field" if self.format == "json" or "event_id" in self.fields else "line"

    @property
    def columns(self) -> list[str] | None:
        """The layout's column names (csv, text, regex); None for JSON."""
        layout = self.csv or self.text or self.regex
        return None if layout is None else list(layout.columns)


_LAYOUT_HINT = {
    "csv": "columns: [...]",
    "text": "columns: [...], optionally delimiter: a regular expression",
    "regex": "pattern: a regular expression with named groups",
}
