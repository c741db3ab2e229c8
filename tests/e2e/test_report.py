"""`userprofile report` on the shared run: what it shows equals the tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.e2e.shared import AS_OF, EARLIER, PipelineRun
from userprofile.cli import main

pytestmark = pytest.mark.e2e


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match, f"report has no section {anchor!r}"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows if "<td>" in row]


def test_report_shows_the_snapshot_and_its_drift(own_run: PipelineRun) -> None:
    # The run has an earlier snapshot (EARLIER) to compare with; the report goes to the
    # config's storage.reports (a copy of the run, so the shared one is only read).
    assert main(own_run.args("report", "--as-of", AS_OF.isoformat())) == 0
    settings = own_run.settings
    page = (Path(settings.storage.reports) / f"user_profile_report_{AS_OF}.html").read_text()

    profile = DeltaTable(own_run.profile_path).to_pandas()
    current = profile[profile.snapshot_date == AS_OF]
    segments = {
        int(r[0]): int(r[2].replace(",", "")) for r in _table_rows(_section(page, "segments"))
    }
    assert segments == current.segment_id.value_counts().to_dict()

    tags = DeltaTable(str(Path(own_run.profile_path).parent / "tag_counts")).to_pandas()
    expected_tags = tags[tags.snapshot_date == AS_OF].set_index("tag").users.to_dict()
    shown_tags = {r[0]: int(r[1].replace(",", "")) for r in _table_rows(_section(page, "tags"))}
    assert shown_tags == expected_tags

    warehouse = Path(settings.storage.warehouse)
    quarantine = DeltaTable(str(warehouse / "bronze" / "quarantine")).to_pandas()
    quality = _section(page, "data-quality")
    for code, rows in quarantine.reason_code.value_counts().items():
        assert f"<td>{code}</td>" in quality
        assert any(r[0] == code and r[-1] == f"{rows:,}" for r in _table_rows(quality))

    previous = max(d for d in profile.snapshot_date if d < AS_OF)
    assert previous == EARLIER
    assert f"Compared with snapshot {previous}" in _section(page, "drift")
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', page)) == 8
    assert not re.search(r'(src|href)="(http|//)', page)  # self-contained: opens offline
