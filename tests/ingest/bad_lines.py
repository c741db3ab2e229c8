"""Hypothesis strategies for a landing delivery of nasty lines, and writing it to landing.

A line is valid (an event every check accepts), an event with one field given a wrong
type, an odd timestamp, SQL- or HTML-looking text or a number that is not one, arbitrary
bytes, a valid event cut short or with bytes that are not UTF-8, or deeply nested JSON.
Every file holds a line of each kind. Event ids come from a small pool, so the same id
often arrives twice with different content.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.ingest.bad_input import records
from tests.ingest.raw_events import GOOD
from userprofile.ingest.fields import EVENT_FIELDS, EVENT_TYPES

ID_POOL = tuple(f"h{i}" for i in range(5))
# In the past on any clock these tests run on; offsets, a DST gap and fold, epoch 0.
VALID_TIMESTAMPS = (
    "2026-01-05T10:00:00Z",
    "1970-01-01T00:00:00Z",
    "2025-03-30T01:30:00+01:00",
    "2025-10-26T01:30:00",
    "2025-12-31T23:59:59.999999-12:00",
)
ODD_TIMESTAMPS = (
    "9999-12-31T23:59:59Z",
    "+10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "0000-06-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "2026-02-30T10:00:00Z",
    "2016-12-31T23:59:60Z",
    "1767607200",
    "",
)
NASTY_TEXT = (
    "'; DROP TABLE bronze_events; --",
    "1' OR '1'='1",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "\u0000\u202e\ufeff",
    "\ud800",  # a lone surrogate: no UTF-8 encodes it
    " ",
)
WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and the infinities included
    st.text(max_size=12),
    st.sampled_from(NASTY_TEXT),
    st.sampled_from(ODD_TIMESTAMPS),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@dataclass(frozen=True)
class Line:
    """One line's bytes; ``valid_id``: the event id of a line every check accepts."""

    data: bytes
    valid_id: str | None = None


@dataclass(frozen=True)
class LandingFile:
    lines: tuple[Line, ...]
    packed: bool  # gzip
    newline: bytes
    ends_with_newline: bool

    def content(self) -> bytes:
        text = self.newline.join(line.data for line in self.lines)
        text += self.newline if self.ends_with_newline and self.lines else b""
        return gzip.compress(text, mtime=0) if self.packed else text


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in record.items() if v is not None}).encode()


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        **GOOD,
        "event_id": draw(st.sampled_from(ID_POOL)),
        "event_ts": draw(st.sampled_from(VALID_TIMESTAMPS)),
        "event_type": draw(st.sampled_from(EVENT_TYPES)),
        "category": draw(st.sampled_from(("books", *NASTY_TEXT[:4]))),
        "price": draw(st.integers(0, 100_000)) / 100,
        "quantity": draw(st.integers(1, 1000)),
    }


valid_lines = valid_records().map(lambda r: Line(_json(r), r["event_id"]))
wrong_type_lines = st.builds(
    lambda record, field, value: Line(_json({**record, field: value})),
    valid_records(),
    st.sampled_from(EVENT_FIELDS),
    WRONG_VALUES,
)
odd_timestamp_lines = st.builds(
    lambda record, ts: Line(_json({**record, "event_ts": ts})),
    valid_records(),
    st.sampled_from(ODD_TIMESTAMPS),
)
nasty_text_lines = st.builds(
    lambda record, field, text: Line(_json({**record, field: text})),
    valid_records(),
    st.sampled_from([f for f in EVENT_FIELDS if f not in ("price", "quantity")]),
    st.sampled_from(NASTY_TEXT),
)
not_a_number_lines = st.builds(
    lambda record, field, value: Line(_json({**record, field: value})),
    valid_records(),
    st.sampled_from(("price", "quantity")),
    st.sampled_from((math.nan, math.inf, -math.inf, "NaN", "-Infinity", "1e400", 2.5, -0.0)),
)
cut_lines = st.builds(lambda line, at: Line(line.data[:at]), valid_lines, st.integers(0, 200))
not_utf8_lines = st.builds(
    lambda line, junk, at: Line(line.data[:at] + junk + line.data[at:]),
    valid_lines,
    st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x9f", b"\x00")),
    st.integers(0, 200),
)
nested_lines = st.integers(1, 3000).map(
    lambda depth: Line(b'{"event_id": "nested", "a": ' + b"[" * depth + b"]" * depth + b"}")
)
LINE_KINDS = (
    valid_lines,
    wrong_type_lines,
    odd_timestamp_lines,
    nasty_text_lines,
    not_a_number_lines,
    st.binary(max_size=80).map(Line),
    cut_lines,
    not_utf8_lines,
    nested_lines,
)
any_lines = st.one_of(valid_lines, *LINE_KINDS)  # valid twice: about a third of the lines


@st.composite
def file_lines(draw: st.DrawFn) -> tuple[Line, ...]:
    """A line of every kind, then more of any kind, in any order; sometimes none at all."""
    if draw(st.integers(0, 9)) == 0:
        return ()
    one_of_each = [draw(kind) for kind in LINE_KINDS]
    more = draw(st.lists(any_lines, max_size=50))
    return tuple(draw(st.permutations([*one_of_each, *more])))


landing_files = st.builds(
    LandingFile,
    file_lines(),
    st.booleans(),
    st.sampled_from((b"\n", b"\r\n")),
    st.booleans(),
)
deliveries = st.lists(landing_files, min_size=1, max_size=4)


def write_delivery(folder: Path, files: list[LandingFile]) -> dict[str, int]:
    """Write the files into folder; the records in each, counted from the bytes written."""
    folder.mkdir(parents=True)
    written = {}
    for i, file in enumerate(files):
        name = f"part-{i}.json" + (".gz" if file.packed else "")
        data = file.content()
        (folder / name).write_bytes(data)
        written[name] = records(data, file.packed)
    return written


def valid_ids(files: list[LandingFile]) -> set[str]:
    return {line.valid_id for f in files for line in f.lines if line.valid_id is not None}
