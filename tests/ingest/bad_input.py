"""The bad-input corpus (tests/data/bad_input): its sources, its expected counts as its
README lists them, and records counted in Python, independently of the code under test.

A record is what the landing reader makes a record: a line ended by LF, CR or CRLF (or
by the end of the file), a leading UTF-8 byte order mark dropped; for a CSV source with a
header, a line equal to the header is not a record.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO, conf_document, write_conf
from tests.ingest.raw_events import event
from userprofile.config import Settings, load_settings

CORPUS = REPO / "tests" / "data" / "bad_input"
BOM = b"\xef\xbb\xbf"
# Jackson (Spark's JSON parser) refuses strings longer than this many characters.
JSON_MAX_STRING = 20_000_000
# The worked CSV example's source, as conf/examples/ configures it.
EXAMPLE = yaml.safe_load((REPO / "conf" / "examples" / "clickstream_csv.yaml").read_text())
CLICKSTREAM: dict[str, Any] = EXAMPLE["ingest"]["sources"]["clickstream"]
# Landing folder (= source) -> its config; `events` is base.yaml's JSON source.
SOURCES: dict[str, dict[str, Any]] = {
    "events": {"path": "events"},
    "zoned": {"path": "zoned", "timezone": "Europe/London"},
    "bad_only": {"path": "bad_only"},
    "clickstream": CLICKSTREAM,
}
CSV_HEADER = ",".join(CLICKSTREAM["csv"]["columns"]).encode()
HUGE_LINE_FILE = "events/huge_line.json"


@dataclass(frozen=True)
class Expected:
    """One corpus file's row in the README table."""

    file: str  # source folder / file name
    records: int
    bronze: int
    quarantine: int
    duplicates: int  # bronze rows of an event id stored once in silver for an earlier row
    reasons: Counter[str]


def settings_under(root: Path) -> Settings:
    """Settings with every corpus source, storage under root and no data-quality hold."""
    ingest = {"max_reject_share": 1.0, "sources": SOURCES}
    return load_settings(write_conf(root / "bad_input.yaml", conf_document(root, ingest=ingest)))


def land_corpus(landing: Path) -> None:
    """Every corpus file into its source's landing folder, the huge line file generated."""
    for file in corpus_files():
        (landing / file).parent.mkdir(parents=True, exist_ok=True)
        (landing / file).write_bytes(file_bytes(file))


def file_bytes(file: str) -> bytes:
    return huge_lines() if file == HUGE_LINE_FILE else (CORPUS / file).read_bytes()


def huge_lines() -> bytes:
    """A valid event with a 1M-character category, then one over the JSON parser's limit."""
    accepted = event(event_id="huge-1", category="x" * 1_000_000)
    refused = event(event_id="huge-2", category="y" * (JSON_MAX_STRING + 1))
    return f"{accepted}\n{refused}\n".encode()


def records(data: bytes, packed: bool = False, header: bytes | None = None) -> int:
    """Records in a file's bytes (``packed``: gzip, unpacked first), counted in Python."""
    # bytes.splitlines() splits at LF, CR and CRLF only, as Hadoop's line reader does.
    lines = (gzip.decompress(data) if packed else data).splitlines()
    if lines:
        lines[0] = lines[0].removeprefix(BOM)
    return sum(1 for line in lines if header is None or line != header)


def records_of(file: str) -> int:
    """Records of a corpus file (``folder/name``), the CSV source's header line aside."""
    header = CSV_HEADER if file.startswith("clickstream/") else None
    return records(file_bytes(file), file.endswith(".gz"), header)


def corpus_files() -> list[str]:
    """Every file the corpus lands, as `folder/name`, the generated one included."""
    stored = [f"{p.parent.name}/{p.name}" for f in SOURCES for p in (CORPUS / f).iterdir()]
    return sorted([*stored, HUGE_LINE_FILE])


def expected_counts() -> dict[str, Expected]:
    """The README's table: `| `file` | what | records | bronze | quarantine | dups | reasons |`."""
    rows = {}
    for line in (CORPUS / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 7:  # the folder table has 2
            continue
        file, _, *counts, reasons = cells
        n_records, bronze, quarantine, duplicates = (int(c) for c in counts)
        name = file.strip("`")
        rows[name] = Expected(
            name, n_records, bronze, quarantine, duplicates, parse_reasons(reasons)
        )
    return rows


def parse_reasons(cell: str) -> Counter[str]:
    """'BAD_TIMESTAMP 2, MALFORMED_RECORD 1' (or empty) -> counts per reason code."""
    pairs = [part.split() for part in cell.split(",") if part.strip()]
    return Counter({code: int(n) for code, n in pairs})
