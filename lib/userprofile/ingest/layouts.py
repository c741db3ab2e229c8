"""Raw lines of a source -> our event fields as strings (``f_<field>``), by layout.

Each reader takes ``(value, _source_file, _file_time)`` lines and returns the raw
text (``raw_record``), ``_malformed``, one ``f_<field>`` string per event field
and ``_rescued_data`` (unknown JSON keys; null for other layouts). The layouts
and the event-identity rule are described in ``userprofile.config.sources``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from userprofile.config import CsvLayout, EventSource, RegexLayout, TextLayout
from userprofile.config.rules import rule_column
from userprofile.ingest.fields import EVENT_FIELDS

CORRUPT = "_corrupt_record"
LINEAGE = ("raw_record", "_source_file", "_file_time")
Reader = Callable[[DataFrame], DataFrame]


def field_column(name: str) -> str:
    return f"f_{name}"


def reader(source: EventSource) -> Reader:
    """The reader of the source's layout, with line identity where the source asks for it."""
    read = {
        "json": read_json_records,
        "csv": read_csv_records,
        "text": read_text_records,
        "regex": read_regex_records,
    }[source.format](source)
    if source.identity == "field":
        return read
    return lambda lines: read(lines).transform(with_line_identity)


def read_json_records(source: EventSource) -> Reader:
    """JSON lines: keys renamed by ``fields``; unknown keys kept in ``_rescued_data``.

    Parsing to ``map<string,string>`` reads every line once and keeps all of its
    keys, so unknown fields can be rescued instead of dropped. Filtering the map (a
    lambda, the slow part) is left to the lines that may hold an unknown key: those
    with more keys than known keys with a value (measured: a parse with the declared
    struct schema plus ``json_object_keys`` to find unknown keys costs more than this).
    """
    their_key = {ours: source.fields.get(ours, ours) for ours in EVENT_FIELDS}
    known_keys = list(dict.fromkeys(their_key.values()))
    known = F.array(*[F.lit(k) for k in known_keys])

    def transform(lines: DataFrame) -> DataFrame:
        record = F.from_json("value", "map<string,string>")
        parsed = lines.select(
            F.col("value").alias("raw_record"), "_source_file", "_file_time", record.alias("m")
        )
        with_value = [F.col("m")[k].isNotNull().cast("int") for k in known_keys]
        more_keys = F.size("m") > reduce(Column.__add__, with_value)
        extra = F.map_filter("m", lambda k, _: ~F.array_contains(known, k))
        return parsed.select(
            *LINEAGE,
            F.col("m").isNull().alias("_malformed"),
            *[F.col("m")[theirs].alias(field_column(ours)) for ours, theirs in their_key.items()],
            F.when(more_keys & (F.size(extra) > 0), F.to_json(extra)).alias("_rescued_data"),
        )

    return transform


def read_csv_records(source: EventSource) -> Reader:
    """Delimited text with quoting: Spark's CSV parser with the declared columns."""
    layout = source.csv
    assert isinstance(layout, CsvLayout)  # guaranteed by EventSource validation
    schema = ", ".join(f"`{c}` string" for c in layout.columns) + f", {CORRUPT} string"
    options = {"sep": layout.delimiter, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    header = F.col("value") == F.lit(layout.delimiter.join(layout.columns))

    def transform(lines: DataFrame) -> DataFrame:
        body = lines.where(~header) if layout.header else lines
        parsed = body.select(
            F.col("value").alias("raw_record"),
            "_source_file",
            "_file_time",
            F.from_csv("value", schema, options).alias("r"),
        ).select(*LINEAGE, "r.*")
        return _mapped(source, parsed, F.col(CORRUPT).isNotNull())

    return transform


def read_text_records(source: EventSource) -> Reader:
    """Columns split by a regular expression; leading and trailing whitespace is ignored."""
    layout = source.text
    assert isinstance(layout, TextLayout)  # guaranteed by EventSource validation
    names = F.array(*[F.lit(c) for c in layout.columns])

    def transform(lines: DataFrame) -> DataFrame:
        stripped = F.regexp_replace("value", r"^\s+|\s+$", "")
        split = lines.select(
            F.col("value").alias("raw_record"),
            "_source_file",
            "_file_time",
            F.split(stripped, layout.delimiter, -1).alias("_parts"),
        )
        body = split.where(~(F.col("_parts") == names)) if layout.header else split
        columns = body.select(
            *LINEAGE,
            "_parts",
            # get(): null past the end of a short line (indexing would fail under ANSI mode).
            *[F.get("_parts", i).alias(c) for i, c in enumerate(layout.columns)],
        )
        return _mapped(source, columns, F.size("_parts") != len(layout.columns))

    return transform


def read_regex_records(source: EventSource) -> Reader:
    """Lines matched by a pattern; each named group is a column (null when it matched nothing)."""
    layout = source.regex
    assert isinstance(layout, RegexLayout)  # guaranteed by EventSource validation

    def transform(lines: DataFrame) -> DataFrame:
        value = F.col("value")
        columns = lines.select(
            value.alias("raw_record"),
            "_source_file",
            "_file_time",
            *[
                F.nullif(F.regexp_extract(value, layout.pattern, number), F.lit("")).alias(name)
                for name, number in layout.group_numbers().items()
            ],
        )
        return _mapped(source, columns, ~F.col("raw_record").rlike(layout.pattern))

    return transform


def _mapped(source: EventSource, columns: DataFrame, malformed: Column) -> DataFrame:
    """The layout's string columns -> our fields through the source's expressions
    (checked and re-rendered: Spark never sees a mapping's raw text)."""
    return columns.select(
        *LINEAGE,
        malformed.alias("_malformed"),
        *[
            (
                rule_column(source.fields[ours], source.columns).cast("string")
                if ours in source.fields
                else F.lit(None).cast("string")
            ).alias(field_column(ours))
            for ours in EVENT_FIELDS
        ],
        F.lit(None).cast("string").alias("_rescued_data"),
    )


def with_line_identity(records: DataFrame) -> DataFrame:
    """``f_event_id`` from the line's content and its repeat number within its file.

    Identical lines are interchangeable, so numbering them in any order gives the
    same set of ids on every read of the file.
    """
    repeat = F.row_number().over(
        Window.partitionBy("_source_file", "raw_record").orderBy("raw_record")
    )
    line_id = F.concat(F.lit("line:"), F.sha2("raw_record", 256), F.lit(":"), repeat)
    return records.withColumn(field_column("event_id"), line_id)
