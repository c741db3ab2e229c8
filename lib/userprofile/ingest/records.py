"""Raw records -> typed bronze rows or quarantine rows with a reason.

Every source goes through the same three stages, each a pure DataFrame function:

1. ``userprofile.ingest.layouts``: one raw line -> our event fields as strings
   (``f_<field>``), the raw text, and fields we do not know (``_rescued_data``,
   JSON only), by the source's layout (JSON, CSV, delimited text, regex);
2. ``typed_events``: value mappings, types, timestamps (format and zone per source);
3. ``with_reject_reason``: the first failed check names the reason, or null.

Bronze -> silver is ``userprofile.ingest.silver``; the streaming loop, checkpoints
and writes live in ``userprofile.ingest.step``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userprofile.config import EventSource
from userprofile.ingest.fields import EVENT_FIELDS, EVENT_TYPES
from userprofile.ingest.layouts import field_column, reader
from userprofile.ingest.privacy import hmac_sha256_hex

ID_FIELDS = ("event_id", "user_id", "anonymous_id", "session_id", "order_id")
NUMERIC_FIELDS = {"price": T.DoubleType(), "quantity": T.IntegerType()}
MAX_QUANTITY = 1000
# Earlier event times are BAD_TIMESTAMP: far from the first Python date (year 1) and the
# first pandas timestamp (1677), which later steps read events with.
EARLIEST_EVENT_TS = "1900-01-01 00:00:00"

# Reason codes with a reason a person can act on, in the order they are checked.
REJECT_REASONS: dict[str, str] = {
    "MALFORMED_RECORD": (
        "line is not a JSON object, not a row with the declared columns, "
        "or does not match the source's pattern"
    ),
    "MISSING_EVENT_ID": "event_id is missing or empty",
    "MISSING_USER": "no user_id (and no anonymous_id where the source allows anonymous rows)",
    "BAD_FIELD_TYPE": "price or quantity is not a number",
    "BAD_TIMESTAMP": (
        "event_ts is missing, does not match the source's timestamp format, or is before 1900"
    ),
    "FUTURE_TIMESTAMP": "event_ts is later than the file's modification time plus the tolerance",
    "UNKNOWN_EVENT_TYPE": f"event_type (after mapping) is not one of {', '.join(EVENT_TYPES)}",
    "NEGATIVE_PRICE": "price is negative",
    "ABSURD_PRICE": "price is above ingest.max_price",
    "BAD_QUANTITY": f"quantity is not between 1 and {MAX_QUANTITY}",
    "MISSING_PRICE": "add_to_cart, purchase or cancel without a price",
}

BRONZE_COLUMNS = (
    "source",
    "event_id",
    "event_ts",
    "event_date",
    *[f for f in EVENT_FIELDS if f not in ("event_id", "event_ts")],
    "_rescued_data",
    "_source_file",
    "_ingested_at",
)


def typed_events(source: EventSource) -> Callable[[DataFrame], DataFrame]:
    """``f_*`` strings -> typed event columns; ``_bad_field`` names a field that did not parse."""

    def transform(records: DataFrame) -> DataFrame:
        columns: dict[str, Column] = {}
        for name in EVENT_FIELDS:
            raw = F.col(field_column(name))
            if name in source.values:
                mapping = F.create_map(
                    *[F.lit(x) for kv in source.values[name].items() for x in kv]
                )
                raw = F.coalesce(mapping[raw], raw)
            # An empty or blank id is no id: it must not merge strangers into one key.
            columns[name] = F.nullif(F.trim(raw), F.lit("")) if name in ID_FIELDS else raw
        for name, data_type in NUMERIC_FIELDS.items():
            # Through double so "2.0" is a valid quantity; try_cast: bad text is null, not an error.
            text = field_column(name)
            columns[name] = F.expr(
                f"try_cast(try_cast(`{text}` AS double) AS {data_type.simpleString()})"
            )
        bad_field = F.coalesce(
            *[
                F.when(F.col(field_column(n)).isNotNull() & columns[n].isNull(), F.lit(n))
                for n in NUMERIC_FIELDS
            ]
        )
        return records.select(
            "raw_record",
            "_source_file",
            "_file_time",
            "_malformed",
            "_rescued_data",
            *[c.alias(n) for n, c in columns.items() if n != "event_ts"],
            F.col(field_column("event_ts")).alias("event_ts_text"),
            _parse_timestamp(F.col(field_column("event_ts")), source).alias("event_ts"),
            bad_field.alias("_bad_field"),
        )

    return transform


# Text Spark's parser would take a zone from: one after an ISO time of day (Z, +05:30,
# UTC, GMT+1, Europe/London, ...), with or without a date before it.
ISO_ZONE_AFTER_TIME = r"([T ]\d{1,2}|^T?\d{1,2}:\d{1,2})(:\d{1,2}(:\d{1,2}(\.\d*)?)?)?\s*[^\d\s.:]"
# Spark datetime pattern letters that parse a zone or an offset.
ZONE_PATTERN_LETTERS = frozenset("VzOXxZ")


def _names_zone(text: Column, timestamp_format: str | None) -> Column:
    """Whether the timestamp text carries its own zone or offset."""
    if timestamp_format is None:
        # Spark ignores control characters and spaces around the text.
        trimmed = F.regexp_replace(text, r"^[\x00-\x20\x7f]+|[\x00-\x20\x7f]+$", "")
        return trimmed.rlike(ISO_ZONE_AFTER_TIME)
    always, zoneless = zone_fields(timestamp_format)
    if always or zoneless == timestamp_format:
        return F.lit(always)
    # The zone is in an optional section: the text has one unless it parses without it.
    return F.try_to_timestamp(text, F.lit(zoneless)).isNull()


def zone_fields(pattern: str) -> tuple[bool, str]:
    """Whether a Spark datetime pattern always reads a zone, and the pattern without its
    optional sections (``[...]``) that read one. Letters in 'quotes' are literal text."""
    kept: list[str] = []
    section: list[str] = []
    quoted, depth, always, section_zone = False, 0, False, False
    for char in pattern:
        if char == "'":
            quoted = not quoted
        zone = not quoted and char in ZONE_PATTERN_LETTERS
        if not quoted and char == "[":
            depth += 1
        if depth == 0:
            kept.append(char)
            always |= zone
            continue
        section.append(char)
        section_zone |= zone
        if not quoted and char == "]":
            depth -= 1
            if depth == 0:
                kept.extend([] if section_zone else section)
                section, section_zone = [], False
    return always, "".join(kept + section)


def _parse_timestamp(text: Column, source: EventSource) -> Column:
    """The event's instant, or null (BAD_TIMESTAMP) when it does not parse or is too early."""
    parsed = (
        F.try_to_timestamp(text, F.lit(source.timestamp_format))
        if source.timestamp_format
        else F.try_to_timestamp(text)
    )
    if source.timestamp_precision == "date":
        # A date is a calendar day where it was recorded: no zone shift into another day.
        instant = F.to_timestamp(F.to_date(parsed))
    elif source.timezone:
        # The source's zone is for text that names none: an offset in the text already won.
        local = F.to_utc_timestamp(parsed, source.timezone)
        instant = F.when(_names_zone(text, source.timestamp_format), parsed).otherwise(local)
    else:
        instant = parsed
    # Too early to be an event: a year 0 or before crashed ingest collecting the batch's dates.
    return F.when(instant >= F.lit(EARLIEST_EVENT_TS).cast("timestamp"), instant)


def with_reject_reason(
    source: EventSource, future_tolerance_hours: int, max_price: float
) -> Callable[[DataFrame], DataFrame]:
    """Add ``reason_code``: the first failed check, or null for a valid event."""

    def transform(events: DataFrame) -> DataFrame:
        # Relative to the file's time, not the clock: a replayed batch classifies the same way.
        horizon = F.col("_file_time") + F.make_interval(hours=F.lit(future_tolerance_hours))
        no_user = F.col("user_id").isNull() & (
            F.lit(source.require_user_id) | F.col("anonymous_id").isNull()
        )
        checks: list[tuple[str, Column]] = [
            ("MALFORMED_RECORD", F.col("_malformed")),
            ("MISSING_EVENT_ID", F.coalesce(F.trim("event_id"), F.lit("")) == ""),
            ("MISSING_USER", no_user),
            ("BAD_FIELD_TYPE", F.col("_bad_field").isNotNull()),
            ("BAD_TIMESTAMP", F.col("event_ts").isNull()),
            ("FUTURE_TIMESTAMP", F.col("event_ts") > horizon),
            (
                "UNKNOWN_EVENT_TYPE",
                ~F.coalesce(F.col("event_type").isin(*EVENT_TYPES), F.lit(False)),
            ),
            ("NEGATIVE_PRICE", F.col("price") < 0),
            ("ABSURD_PRICE", F.col("price") > max_price),
            ("BAD_QUANTITY", (F.col("quantity") < 1) | (F.col("quantity") > MAX_QUANTITY)),
            (
                "MISSING_PRICE",
                F.col("event_type").isin("add_to_cart", "purchase", "cancel")
                & F.col("price").isNull(),
            ),
        ]
        reason: Column = F.lit(None).cast("string")
        for code, failed in reversed(checks):
            reason = F.when(F.coalesce(failed, F.lit(False)), F.lit(code)).otherwise(reason)
        return events.withColumn("reason_code", reason)

    return transform


def classify(
    source: EventSource, future_tolerance_hours: int, max_price: float
) -> Callable[[DataFrame], DataFrame]:
    """(value, _source_file) lines of a source -> typed rows with ``reason_code``."""
    read = reader(source)

    def transform(lines: DataFrame) -> DataFrame:
        if "_file_time" not in lines.columns:
            lines = lines.withColumn("_file_time", F.current_timestamp())
        classified = (
            lines.transform(read)
            .transform(typed_events(source))
            .transform(with_reject_reason(source, future_tolerance_hours, max_price))
        )
        # The raw text is kept for rejected rows only: valid rows are in bronze, typed.
        rejected = F.col("reason_code").isNotNull()
        return classified.withColumn("raw_record", F.when(rejected, F.col("raw_record")))

    return transform


def to_bronze(classified: DataFrame, source_name: str) -> DataFrame:
    """Valid events, typed, with lineage columns, partitioned by ``event_date``."""
    return classified.where(F.col("reason_code").isNull()).select(
        *[
            F.lit(source_name).alias(c)
            if c == "source"
            else F.to_date("event_ts").alias(c)
            if c == "event_date"
            else F.current_timestamp().alias(c)
            if c == "_ingested_at"
            else F.col(c)
            for c in BRONZE_COLUMNS
        ]
    )


def to_quarantine(classified: DataFrame, source_name: str, key: bytes) -> DataFrame:
    """Rejected records: raw text, source file, a code and a reason a person can act on.

    The pseudonymous keys of the ids that could be read are kept so that an
    erasure request can find the user's rejected records too.
    """
    reasons = F.create_map(*[F.lit(x) for pair in REJECT_REASONS.items() for x in pair])
    return classified.where(F.col("reason_code").isNotNull()).select(
        F.lit(source_name).alias("source"),
        hmac_sha256_hex(key, F.col("user_id")).alias("user_key"),
        hmac_sha256_hex(key, F.col("anonymous_id")).alias("anonymous_key"),
        "raw_record",
        "_source_file",
        "reason_code",
        reasons[F.col("reason_code")].alias("reason"),
        F.current_timestamp().alias("_ingested_at"),
        F.current_date().alias("ingest_date"),
    )
