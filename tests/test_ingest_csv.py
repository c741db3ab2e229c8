"""A user's own CSV exports, ingested by writing only a mapping in conf (conf/examples/)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import SparkSession

from tests.helpers import REPO, storage_under, write_conf
from userprofile import tables
from userprofile.config import load_settings
from userprofile.steps.common import RunContext
from userprofile.steps.ingest import run_ingest

CLICKSTREAM = """event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3
2019-10-01 00:00:05 UTC,cart,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a
2019-10-01 00:00:07 UTC,purchase,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a
2019-10-01 00:00:07 UTC,purchase,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a
2019-10-01 00:00:09 UTC,wishlist,1004237,2053013555631882655,electronics.smartphone,apple,1081.98,535871217,c6bd7419-2748
2019-10-01 00:00:11 UTC,view,1480613,2053013561092866779,computers.desktop,pulser,908.62,,4d3b30da-a5e4
not,enough,columns
"""

ORDERS = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom
536414,22139,,56,6/1/2011 11:52,0,,United Kingdom
536500,22633,HAND WARMER UNION JACK,-12,6/1/2011 12:00,2.10,13047,United Kingdom
536501,22633,HAND WARMER UNION JACK,3,6/1/2011 12:05,abc,13047,United Kingdom
"""


def settings_for(example: str, tmp_path: Path, folder: str, text: str):  # type: ignore[no-untyped-def]
    storage = storage_under(tmp_path)
    conf = write_conf(
        tmp_path / "conf.yaml",
        {
            "extends": str(REPO / "conf" / "examples" / example),
            "storage": storage,
            "ingest": {"max_reject_share": 1.0},
        },
    )
    target = tmp_path / "landing" / folder
    target.mkdir(parents=True)
    (target / "export.csv").write_text(text)
    return load_settings(conf)


def test_clickstream_export(spark: SparkSession, tmp_path: Path) -> None:
    ctx = RunContext(
        spark, settings_for("clickstream_csv.yaml", tmp_path, "clickstream", CLICKSTREAM)
    )
    report = run_ingest(ctx)
    assert report.rows["events accepted"] == 4
    assert report.rows["quarantined UNKNOWN_EVENT_TYPE"] == 1  # wishlist has no mapping
    assert report.rows["quarantined MISSING_USER"] == 1  # require_user_id: true
    assert report.rows["quarantined MALFORMED_RECORD"] == 1
    bronze = tables.read(spark, ctx.table("bronze_events"))
    rows = {(r.event_type, r.user_id, r.price, r.quantity, r.category) for r in bronze.collect()}
    assert rows == {
        ("product_view", "541312140", 35.79, None, "2103807459595387724"),
        ("add_to_cart", "554748717", 33.2, 1, "appliances.environment.water_heater"),
        ("purchase", "554748717", 33.2, 1, "appliances.environment.water_heater"),
    }
    first = bronze.where("event_type = 'product_view'").first()
    assert first is not None
    assert first.event_ts == dt.datetime(2019, 10, 1, 0, 0)
    assert first.session_id == "72d76fde-8bb3"
    # The repeated purchase line is the same event: stored once in silver.
    assert tables.read(spark, ctx.table("silver_events")).count() == 3


def test_order_lines_export(spark: SparkSession, tmp_path: Path) -> None:
    ctx = RunContext(spark, settings_for("orders_csv.yaml", tmp_path, "orders", ORDERS))
    report = run_ingest(ctx)
    assert report.rows["events accepted"] == 4
    assert report.rows["quarantined BAD_QUANTITY"] == 1  # negative quantity, not a cancellation
    assert report.rows["quarantined BAD_FIELD_TYPE"] == 1  # price "abc"
    events = {
        r.event_id.split(":")[0]: r
        for r in tables.read(spark, ctx.table("bronze_events")).collect()
    }
    cancel = events["C536379"]
    assert (cancel.event_type, cancel.quantity, cancel.price) == ("cancel", 1, 27.5)
    # Europe/London in December is UTC+0, in June UTC+1.
    assert cancel.event_ts == dt.datetime(2010, 12, 1, 9, 41)
    anonymous = events["536414"]
    assert anonymous.user_id is None
    assert anonymous.anonymous_id == "invoice:536414"
    assert anonymous.event_ts == dt.datetime(2011, 6, 1, 10, 52)
    assert events["536365"].session_id == "536365"
