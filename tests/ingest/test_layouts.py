"""Source layouts (JSON, CSV, delimited text, regex), line identity and date-only timestamps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from chispa import assert_df_equality
from pydantic import ValidationError
from pyspark.sql import DataFrame, SparkSession

from tests.helpers import TEST_KEY
from userprofile.config import EventSource
from userprofile.ingest.records import classify, to_bronze
from userprofile.ingest.silver import to_silver_events

WHITESPACE = EventSource(
    path="purchases",
    format="text",
    text={"columns": ["customer", "day", "quantity", "amount"]},
    fields={
        "user_id": "customer",
        "event_ts": "day",
        "event_type": "'purchase'",
        "quantity": "quantity",
        "price": "try_divide(try_cast(amount AS double), try_cast(quantity AS int))",
    },
    timestamp_format="yyyyMMdd",
    timestamp_precision="date",
)
ACCESS_LOG = EventSource(
    path="access",
    format="regex",
    regex={
        "pattern": r'^(?<ip>\S+) \S+ (?<user>\S+) \[(?<time>[^\]]+)\] "(?<method>\S+) '
        r'(?<path>\S+)[^"]*" (?<status>\d{3}) (?<bytes>\S+)(?: "(?<referer>[^"]*)" '
        r'"(?<agent>[^"]*)")?$'
    },
    fields={
        "event_ts": "time",
        "user_id": "nullif(user, '-')",
        "anonymous_id": "ip",
        "ip": "ip",
        "event_type": "CASE WHEN path LIKE '/product/%' THEN 'product_view' ELSE 'page_view' END",
        "product_id": "CASE WHEN path LIKE '/product/%' THEN substring(path, 10) END",
    },
    timestamp_format="dd/MMM/yyyy:HH:mm:ss Z",
)


MINIMAL = {"event_ts": "a", "event_type": "'page_view'", "user_id": "a"}


def lines_in_files(spark: SparkSession, files: dict[str, list[str]]) -> DataFrame:
    rows = [(line, f"file:/landing/{name}") for name, lines in files.items() for line in lines]
    return spark.createDataFrame(rows, "value string, _source_file string")


def classified(spark: SparkSession, source: EventSource, files: dict[str, list[str]]) -> DataFrame:
    return lines_in_files(spark, files).transform(classify(source, 24, 100_000.0))


def test_whitespace_text_without_header(spark: SparkSession) -> None:
    lines = ["00001 19970101 1 11.77", "  00002\t19970112  2 25.00 ", "00003 19970102"]
    rows = classified(spark, WHITESPACE, {"cdnow.txt": lines}).select(
        "user_id", "event_ts", "quantity", "price", "reason_code"
    )
    expected = spark.createDataFrame(
        [
            ("00001", dt.datetime(1997, 1, 1), 1, 11.77, None),
            ("00002", dt.datetime(1997, 1, 12), 2, 12.5, None),
            ("00003", dt.datetime(1997, 1, 2), None, None, "MALFORMED_RECORD"),  # 3 columns, not 4
        ],
        "user_id string, event_ts timestamp, quantity int, price double, reason_code string",
    )
    assert_df_equality(rows, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_text_header_is_skipped_by_its_column_names(spark: SparkSession) -> None:
    source = WHITESPACE.model_copy(
        update={"text": WHITESPACE.text.model_copy(update={"header": True})}  # type: ignore[union-attr]
    )
    lines = ["customer day quantity amount", "00001 19970101 1 11.77"]
    rows = classified(spark, source, {"cdnow.txt": lines}).select("user_id", "reason_code")
    expected = spark.createDataFrame([("00001", None)], "user_id string, reason_code string")
    assert_df_equality(rows, expected, ignore_nullable=True)


def test_a_regex_delimiter_splits_columns(spark: SparkSession) -> None:
    source = WHITESPACE.model_copy(
        update={"text": WHITESPACE.text.model_copy(update={"delimiter": r"\s*;\s*"})}  # type: ignore[union-attr]
    )
    rows = classified(spark, source, {"x.txt": ["7 ; 19970101;3 ;30"]})
    assert rows.select("user_id", "quantity", "price").collect() == [("7", 3, 10.0)]


def test_an_access_log_line_maps_through_named_groups(spark: SparkSession) -> None:
    hit = (
        '203.0.113.9 - frank [10/Oct/2026:13:55:36 -0700] "GET /product/P-17 HTTP/1.1" 200 2326 '
        '"http://example.com/start" "Mozilla/5.0 (X11; Linux)"'
    )
    anonymous = '198.51.100.4 - - [10/Oct/2026:23:10:00 +0000] "GET /about HTTP/1.1" 200 120'
    rows = classified(spark, ACCESS_LOG, {"access.log": [hit, anonymous, "not a log line"]})
    expected = spark.createDataFrame(
        [
            ("frank", "203.0.113.9", "product_view", "P-17", dt.datetime(2026, 10, 10, 20, 55, 36)),
            (None, "198.51.100.4", "page_view", None, dt.datetime(2026, 10, 10, 23, 10)),
            (None, None, "page_view", None, None),  # MALFORMED_RECORD, see below
        ],
        "user_id string, anonymous_id string, event_type string, product_id string, "
        "event_ts timestamp",
    )
    assert_df_equality(
        rows.select("user_id", "anonymous_id", "event_type", "product_id", "event_ts"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    malformed = rows.where("reason_code = 'MALFORMED_RECORD'").select("raw_record").collect()
    assert malformed == [("not a log line",)]


def silver_of(spark: SparkSession, source: EventSource, files: dict[str, list[str]]) -> DataFrame:
    bronze = to_bronze(classified(spark, source, files), "purchases")
    return bronze.transform(to_silver_events(TEST_KEY.encode(), 30))


def test_identical_lines_in_one_file_are_distinct_events(spark: SparkSession) -> None:
    line = "00001 19970101 1 11.77"
    silver = silver_of(spark, WHITESPACE, {"a.txt": [line, line, "00001 19970101 2 5.00"]})
    assert silver.count() == 3
    ids = sorted(r.event_id for r in silver.collect())
    assert [i.rsplit(":", 1)[1] for i in ids].count("2") == 1  # the repeat is numbered 2


def test_a_file_delivered_twice_is_stored_once(spark: SparkSession) -> None:
    lines = ["00001 19970101 1 11.77", "00001 19970101 1 11.77", "00002 19970103 1 4.00"]
    silver = silver_of(spark, WHITESPACE, {"a.txt": lines, "a-resent.txt": lines})
    once = silver_of(spark, WHITESPACE, {"a.txt": lines})
    assert_df_equality(
        silver.select("event_id", "user_key", "price"),
        once.select("event_id", "user_key", "price"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_a_mapped_event_id_is_used_as_it_is(spark: SparkSession) -> None:
    source = WHITESPACE.model_copy(
        update={"fields": {**WHITESPACE.fields, "event_id": "concat(customer, day)"}}
    )
    line = "00001 19970101 1 11.77"
    silver = silver_of(spark, source, {"a.txt": [line, line]})
    assert [r.event_id for r in silver.collect()] == ["0000119970101"]


@pytest.mark.parametrize(
    ("precision", "expected_ts"),
    [
        ("date", dt.datetime(2026, 6, 1)),  # the day as recorded
        ("time", dt.datetime(2026, 5, 31, 23, 0)),  # midnight in London (BST) is 23:00 UTC
    ],
)
def test_dates_only_are_not_shifted_into_another_day(
    spark: SparkSession, precision: str, expected_ts: dt.datetime
) -> None:
    source = WHITESPACE.model_copy(
        update={
            "timestamp_format": "yyyy-MM-dd",
            "timezone": "Europe/London",
            "timestamp_precision": precision,
        }
    )
    bronze = to_bronze(classified(spark, source, {"a.txt": ["00001 2026-06-01 1 9.50"]}), "p")
    assert bronze.select("event_ts", "event_date").collect() == [(expected_ts, expected_ts.date())]


@pytest.mark.parametrize(
    ("timestamp_format", "text", "expected_ts"),
    [
        # The pattern reads an offset: the text's offset wins over the source's zone.
        ("yyyy-MM-dd'T'HH:mmXXX", "2026-07-05T10:00+05:30", dt.datetime(2026, 7, 5, 4, 30)),
        ("yyyy-MM-dd'T'HH:mmXXX", "2026-07-05T10:00Z", dt.datetime(2026, 7, 5, 10, 0)),
        # No zone in the pattern (a quoted letter is literal): London summer time applies.
        ("yyyy-MM-dd'T'HH:mm", "2026-07-05T10:00", dt.datetime(2026, 7, 5, 9, 0)),
        ("yyyy-MM-dd'T'HH:mm'Z'", "2026-07-05T10:00Z", dt.datetime(2026, 7, 5, 9, 0)),
        # An optional offset: each text by what it carries.
        ("yyyy-MM-dd'T'HH:mm[XXX]", "2026-07-05T10:00+05:30", dt.datetime(2026, 7, 5, 4, 30)),
        ("yyyy-MM-dd'T'HH:mm[XXX]", "2026-07-05T10:00", dt.datetime(2026, 7, 5, 9, 0)),
        # No pattern (ISO-8601): a zone after the seconds and their fraction.
        (None, "2026-07-05T10:00:00.5+05:30", dt.datetime(2026, 7, 5, 4, 30, 0, 500000)),
        (None, "2026-07-05T10:00:00.5", dt.datetime(2026, 7, 5, 9, 0, 0, 500000)),
    ],
)
def test_a_text_that_names_a_zone_is_not_shifted_by_the_sources_zone(
    spark: SparkSession, timestamp_format: str | None, text: str, expected_ts: dt.datetime
) -> None:
    source = WHITESPACE.model_copy(
        update={
            "timestamp_format": timestamp_format,
            "timezone": "Europe/London",
            "timestamp_precision": "time",
        }
    )
    bronze = to_bronze(classified(spark, source, {"a.txt": [f"00001 {text} 1 9.50"]}), "p")
    assert bronze.select("event_ts").collect() == [(expected_ts,)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "text"}, "a text source needs `text:`"),
        ({"format": "regex", "regex": {"pattern": r"(\S+) (\S+)"}}, "no named group"),
        ({"format": "regex", "regex": {"pattern": r"(?<a>[)"}}, "not a valid regular expression"),
        ({"format": "text", "text": {"columns": ["a"], "delimiter": "("}}, "not a valid regular"),
        (
            {
                "format": "csv",
                "csv": {"columns": ["a"]},
                "event_identity": "line",
                "fields": {"event_id": "a"},
            },
            "choose one",
        ),
        ({"format": "json", "text": {"columns": ["a"]}}, "apply to text sources only"),
        (
            {"format": "regex", "regex": {"pattern": r"(?<user_agent>.*)"}, "fields": MINIMAL},
            "group name[(]s[)] user_agent are not valid in Java patterns",
        ),
        (
            {"format": "text", "text": {"columns": ["a", "raw_record"]}, "fields": MINIMAL},
            "column name[(]s[)] raw_record are reserved",
        ),
        (
            {"format": "csv", "csv": {"columns": ["a"]}, "fields": {"event_ts": "a"}},
            "fields must map event_type, user_id or anonymous_id",
        ),
        (
            {
                "format": "csv",
                "csv": {"columns": ["a"]},
                "fields": MINIMAL,
                "event_identity": "field",
            },
            "fields must map event_id [(]or event_identity: line[)]",
        ),
        (
            {"timestamp_precision": "date", "timezone": "Europe/London"},
            "timezone has no effect with timestamp_precision: date",
        ),
    ],
)
def test_layout_mistakes_are_config_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EventSource(path="x", **changes)


@pytest.mark.parametrize(
    ("source", "identity"),
    [
        (EventSource(path="x"), "field"),
        (EventSource(path="x", format="csv", csv={"columns": ["a"]}, fields=MINIMAL), "line"),
        (
            EventSource(
                path="x", format="csv", csv={"columns": ["a"]}, fields={**MINIMAL, "event_id": "a"}
            ),
            "field",
        ),
        (EventSource(path="x", event_identity="line"), "line"),
    ],
)
def test_the_default_identity_is_the_line_for_sources_without_an_id(
    source: EventSource, identity: str
) -> None:
    assert source.identity == identity
