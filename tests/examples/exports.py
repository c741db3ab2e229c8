"""A few hundred lines in each layout of conf/examples/, with planted users whose features
are known by hand. Random filler users come from a seeded generator."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

FILLER_USERS = 25
HISTORY_DAYS = 20


@dataclass(frozen=True)
class Export:
    """One example's landing files and what its profile must say about planted users."""

    example: str  # conf/examples/<example>.yaml
    folder: str  # the source's landing folder
    files: dict[str, list[str]]
    as_of: dt.date
    # user id -> feature column -> value, checked in the profile
    planted: dict[str, dict[str, Any]]
    header_lines: int = 0
    # lines that must end in the quarantine (by reason code)
    rejected: dict[str, int] = field(default_factory=dict)
    # personal data that must not reach silver, and how many silver rows its pseudonym keys
    pseudonymised: dict[str, int] = field(default_factory=dict)


def _days(start: dt.date, rng: random.Random) -> list[dt.datetime]:
    """A few visit times of one filler user within the history."""
    return sorted(
        dt.datetime.combine(start + dt.timedelta(days=rng.randrange(HISTORY_DAYS)), dt.time())
        + dt.timedelta(minutes=rng.randrange(24 * 60))
        for _ in range(rng.randint(1, 4))
    )


def app_events_json() -> Export:
    start, rng, lines = dt.date(2026, 2, 1), random.Random(1), []
    for u in range(FILLER_USERS):
        for v, at in enumerate(_days(start, rng)):
            for i, kind in enumerate(rng.choice([["page", "view"], ["view", "basket", "buy"]])):
                record = {
                    "id": f"f{u}-{v}-{i}", "ts": (at + dt.timedelta(minutes=i)).isoformat() + "Z",
                    "uid": f"c-{u}", "visit": f"c-{u}-{v}", "type": kind, "sku": f"SKU-{i}",
                    "cat": "garden", "amount": 12.5, "qty": 1, "order": f"o-{u}-{v}",
                }  # fmt: skip
                lines.append(json.dumps(record))
    planted = [  # two orders, the first of three lines; offsets in the timestamps
        ("p1", "2026-02-10T09:00:00+01:00", "buy", 10.0, 2, "o-1"),
        ("p2", "2026-02-10T09:00:00+01:00", "buy", 5.0, 1, "o-1"),
        ("p3", "2026-02-10T09:01:00+01:00", "buy", 5.0, 1, "o-1"),
        ("p4", "2026-02-12T23:30:00-05:00", "buy", 40.0, 1, "o-2"),  # 04:30 UTC on the 13th
    ]
    for event_id, ts, kind, amount, qty, order in planted:
        record = {"id": event_id, "ts": ts, "uid": "planted", "visit": "pv-" + order,
                  "type": kind, "sku": "SKU-9", "cat": "tools", "amount": amount, "qty": qty,
                  "order": order, "coupon": "WELCOME"}  # fmt: skip
        lines.append(json.dumps(record))
    lines.append('{"id": "broken", "ts": ')
    return Export(
        "events_json",
        "app_events",
        {"day1.json": lines},
        dt.date(2026, 2, 22),
        {"planted": {"orders_total": 2, "items_total": 5, "avg_order_value": 35.0}},
        rejected={"MALFORMED_RECORD": 1},
    )


CLICKSTREAM_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def clickstream_csv() -> Export:
    start, rng, lines = dt.date(2019, 10, 1), random.Random(2), [CLICKSTREAM_HEADER]
    for u in range(FILLER_USERS):
        for v, at in enumerate(_days(start, rng)):
            for i, kind in enumerate(rng.choice([["view"], ["view", "cart", "purchase"]])):
                when = (at + dt.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S UTC")
                lines.append(
                    f"{when},{kind},{100 + i},2053,electronics.phone,acme,99.5,{u},s{u}-{v}"
                )
    # Two identical views in the same second: two events. Then one session with two purchases.
    view = "2019-10-05 10:00:00 UTC,view,44600062,2103,,shiseido,35.79,541312140,sess-1"
    lines += [view, view]
    lines += [
        "2019-10-06 11:00:00 UTC,purchase,44600062,2103,,shiseido,35.79,541312140,sess-2",
        "2019-10-06 11:00:05 UTC,purchase,44600063,2103,,shiseido,14.21,541312140,sess-2",
    ]
    lines.append("2019-10-06 11:00:05 UTC,view,1,2,,x,1.0,,sess-x")  # no user: quarantined
    return Export(
        "clickstream_csv",
        "clickstream",
        {"2019-10.csv": lines},
        dt.date(2019, 10, 22),
        {"541312140": {"product_views_total": 2, "orders_total": 1, "revenue_total": 50.0}},
        header_lines=1,
        rejected={"MISSING_USER": 1},
    )


INVOICE_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def _invoice_date(at: dt.datetime) -> str:
    return f"{at.month}/{at.day}/{at.year} {at.hour}:{at.minute:02d}"


def invoice_lines_csv() -> Export:
    start, rng, lines = dt.date(2011, 1, 3), random.Random(3), [INVOICE_HEADER]
    for u in range(FILLER_USERS):
        for v, at in enumerate(_days(start, rng)):
            for i in range(rng.randint(1, 6)):
                price = rng.choice([0.85, 1.25, 2.55, 4.95])
                lines.append(
                    f'{60000 + u * 10 + v},S{i},"ITEM, {i}",{rng.randint(1, 12)},'
                    f"{_invoice_date(at)},{price},{13000 + u},United Kingdom"
                )
    lines += [  # customer 17850: invoice 536365 has an identical line twice; C536366 cancels
        '536365,85123A,"HANGING HEART T-LIGHT, WHITE",6,1/10/2011 8:26,2.55,17850,United Kingdom',
        '536365,85123A,"HANGING HEART T-LIGHT, WHITE",6,1/10/2011 8:26,2.55,17850,United Kingdom',
        "536365,71053,WHITE METAL LANTERN,6,1/10/2011 8:26,3.39,17850,United Kingdom",
        "536370,22633,HAND WARMER UNION JACK,6,1/12/2011 9:00,1.85,17850,United Kingdom",
        "C536371,22633,HAND WARMER UNION JACK,-2,1/13/2011 9:41,1.85,17850,United Kingdom",
        "536372,22633,HAND WARMER UNION JACK,-2,1/13/2011 9:42,1.85,17850,United Kingdom",
    ]  # fmt: skip
    return Export(
        "orders_csv",
        "orders",
        {"invoices.csv": lines},
        dt.date(2011, 1, 24),
        # 30.60 + 20.34 + 11.10 bought, 3.70 cancelled; two orders, one cancellation
        {
            "17850": {
                "orders_total": 2,
                "items_total": 24,
                "cancels_total": 1,
                "revenue_total": 58.34,
                "avg_order_value": 29.17,
            }
        },
        header_lines=1,
        rejected={"BAD_QUANTITY": 1},
    )


def purchases_text() -> Export:
    start, rng, lines = dt.date(1997, 1, 1), random.Random(4), []
    for u in range(FILLER_USERS):
        for at in _days(start, rng):
            items = rng.randint(1, 4)
            lines.append(f"{u:05d} {at:%Y%m%d} {items:>2d} {items * 11.77:7.2f}")
    planted = ["00099 19970105  2   20.00", "00099 19970105  2   20.00", "00099 19970110  1  5.00"]
    return Export(
        "purchases_text",
        "purchases",
        {"cdnow.txt": [*lines, *planted, "00100 19970105"]},
        dt.date(1997, 1, 22),
        # the identical lines are two purchases of the same day: one order (one session)
        {
            "00099": {
                "orders_total": 2,
                "items_total": 5,
                "revenue_total": 45.0,
                "night_share": None,
                "peak_time_of_day": None,
            }
        },
        rejected={"MALFORMED_RECORD": 1},
    )


AGENT = '"https://example.com/" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile"'


def _hit(ip: str, user: str, at: dt.datetime, path: str, status: int = 200) -> str:
    when = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - {user} [{when}] "GET {path} HTTP/1.1" {status} 512 {AGENT}'


def access_log() -> Export:
    start, rng, lines = dt.date(2026, 10, 1), random.Random(5), []
    for u in range(FILLER_USERS):
        ip = f"198.51.100.{u}"
        for at in _days(start, rng):
            for i, path in enumerate(rng.choice([["/", "/product/P-1"], ["/search?q=a"]])):
                lines.append(_hit(ip, f"user{u}", at + dt.timedelta(seconds=i), path))
    at = dt.datetime(2026, 10, 8, 13, 55, 36)
    same_second = _hit("203.0.113.9", "frank", at, "/product/P-17")
    lines += [
        same_second,
        same_second,
        _hit("203.0.113.9", "frank", at, "/order/confirm?total=25.5"),
    ]
    lines += [_hit("203.0.113.9", "-", at, "/"), _hit("192.0.2.1", "frank", at, "/x", 404)]
    return Export(
        "access_log",
        "access_log",
        {"access.log": lines, "access.log.1": ["garbage that is not a log line"]},
        dt.date(2026, 10, 22),
        {
            "frank": {
                "product_views_total": 2,
                "orders_total": 1,
                "revenue_total": 25.5,
                "mobile_share": 1.0,
            }
        },
        rejected={"UNKNOWN_EVENT_TYPE": 1, "MALFORMED_RECORD": 1},
        # frank's three hits and the anonymous one from the same address
        pseudonymised={"203.0.113.9": 4},
    )


EXPORTS = {
    e.example: e
    for e in (app_events_json(), clickstream_csv(), invoice_lines_csv(), purchases_text(),
              access_log())
}  # fmt: skip
