"""Synthetic raw logs with planted personas, known purchase odds and realistic dirt.

Everything is computed in Spark from hashes of (seed, user, day, session, event),
so the output is the same for a seed whatever the partitioning, and 100M events
never pass through the driver.

The purchase process is exact and simple, so the truth is known: on each day of
a user's active window the user visits with probability ``visit_prob``; a visit
day includes a purchase with probability ``buy_given_visit``. Hence a daily
purchase probability ``p = visit_prob * buy_given_visit`` and, for any window of
days, ``P(at least one purchase) = 1 - (1 - p) ** active_days_in_window``
(see ``true_purchase_probability``). Dirt applied to an event may of course hide
a purchase from the pipeline, as it would in real logs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile.config import GeneratorConfig
from userprofile.ingest.fields import raw_event_schema

# The JSON fields the generator writes: our event fields (its event_ts is ISO-8601 text).
EVENT_LOG_SCHEMA = raw_event_schema()
CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "books", "grocery", "toys")
CATEGORY_BASE_PRICE = (180.0, 45.0, 60.0, 25.0, 50.0, 15.0, 8.0, 30.0)
CHANNELS = ("direct", "organic_search", "paid_search", "email", "social")
REGIONS = ("north", "south", "east", "west", "central")
DIRT_KINDS = (
    "malformed",
    "duplicate",
    "missing_event_id",
    "missing_ids",
    "bad_timestamp",
    "negative_price",
)


@dataclass(frozen=True)
class Persona:
    """Behaviour of one planted persona; ``window`` shapes the active period."""

    visit_prob: float
    buy_given_visit: float
    price_scale: float
    events_per_session: float
    search_share: float
    mobile_share: float
    night_share: float
    window: str  # "full", "late_start" (new users) or "early_stop" (dormant users)


PERSONAS: dict[str, Persona] = {
    "loyal_big_spender": Persona(0.30, 0.30, 2.5, 8.0, 0.10, 0.35, 0.10, "full"),
    "bargain_hunter": Persona(0.25, 0.10, 0.5, 10.0, 0.35, 0.60, 0.20, "full"),
    "window_shopper": Persona(0.20, 0.01, 1.0, 7.0, 0.15, 0.70, 0.35, "full"),
    "new_user": Persona(0.30, 0.12, 1.0, 6.0, 0.20, 0.60, 0.15, "late_start"),
    "dormant": Persona(0.25, 0.08, 1.0, 5.0, 0.15, 0.50, 0.10, "early_stop"),
}

_UNIT = float(1 << 52)


def uniform(seed: int, salt: str, *cols: Column) -> Column:
    """A deterministic pseudo-random number in [0, 1) from the hash of the columns."""
    return (
        F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), *cols), F.lit(1 << 52)).cast("double") / _UNIT
    )


def _pick(u: Column, options: tuple[str, ...]) -> Column:
    """Pick one of ``options`` uniformly with a uniform number ``u``."""
    return F.element_at(
        F.array(*[F.lit(o) for o in options]), (F.floor(u * len(options)) + 1).cast("int")
    )


def generate_users(spark: SparkSession, cfg: GeneratorConfig) -> DataFrame:
    """One row per user: persona, purchase odds, active window and CRM attributes."""
    seed, start, days = cfg.seed, cfg.start_date, cfg.days
    shares = cfg.personas.model_dump()
    total = sum(shares.values())
    idx = F.col("id")
    u_persona = uniform(seed, "persona", idx)
    persona = F.lit(None).cast("string")
    cumulative = 0.0
    for name, share in reversed(list(shares.items())):
        persona = F.when(u_persona < F.lit(1.0 - cumulative / total), F.lit(name)).otherwise(
            persona
        )
        cumulative += share
    params = spark.createDataFrame([{"persona": n, **asdict(p)} for n, p in PERSONAS.items()])
    # Pareto activity (alpha 1.6): a few users do most of the visiting (Zipf-like).
    activity = F.least(
        F.pow(F.lit(1.0) - uniform(seed, "activity", idx), F.lit(-1 / 1.6)), F.lit(6.0)
    )
    offset_late = F.floor(F.lit(days * 0.6) + uniform(seed, "late", idx) * F.lit(days * 0.4)).cast(
        "int"
    )
    offset_stop = F.floor(uniform(seed, "stop", idx) * F.lit(days * 0.5)).cast("int")
    first_day = F.lit(start)
    users = (
        spark.range(cfg.users, numPartitions=max(2, min(200, cfg.users // 50_000 + 1)))
        .withColumn("persona", persona)
        .join(F.broadcast(params), "persona")
        .withColumn("user_id", F.format_string("U%09d", idx))
        .withColumn("visit_prob", F.least(F.col("visit_prob") * 0.45 * activity, F.lit(0.95)))
        .withColumn("daily_purchase_prob", F.col("visit_prob") * F.col("buy_given_visit"))
        .withColumn(
            "active_from",
            F.when(F.col("window") == "late_start", F.date_add(first_day, offset_late)).otherwise(
                first_day
            ),
        )
        .withColumn(
            "active_to",
            # Null: still active when the generated range ends (the process goes on).
            F.when(F.col("window") == "early_stop", F.date_add(first_day, offset_stop)),
        )
        .withColumn(
            "signup_date",
            F.when(F.col("window") == "late_start", F.col("active_from")).otherwise(
                F.date_sub(first_day, (uniform(seed, "signup", idx) * 700).cast("int") + 1)
            ),
        )
        .withColumn("age", (F.lit(18) + uniform(seed, "age", idx) * 55).cast("int"))
        .withColumn(
            "gender", _pick(uniform(seed, "gender", idx), ("female", "male", "unspecified"))
        )
        .withColumn("region", _pick(uniform(seed, "region", idx), REGIONS))
        .withColumn("favourite_category_idx", F.floor(uniform(seed, "fav", idx) * len(CATEGORIES)))
        .withColumn("email", F.format_string("user%d@example.com", idx))
        .withColumn("phone", F.format_string("+44 7%09d", idx))
    )
    return users


def ground_truth(users: DataFrame) -> DataFrame:
    """What the generator planted, for evaluation only: the pipeline never reads it."""
    return users.select(
        "user_id",
        "persona",
        "visit_prob",
        "daily_purchase_prob",
        "active_from",
        "active_to",
        "signup_date",
    )


def crm_users(users: DataFrame) -> DataFrame:
    """The CRM export: attributes plus personal data the pipeline must not pass on."""
    return users.select(
        "user_id",
        "email",
        "phone",
        "age",
        "gender",
        "region",
        F.date_format("signup_date", "yyyy-MM-dd").alias("signup_date"),
    )


def true_purchase_probability(truth: DataFrame, as_of: dt.date, horizon_days: int) -> DataFrame:
    """P(user purchases on a day in [as_of, as_of + horizon)) as planted by the generator.

    Defined for any date, also past the generated range: a user whose ``active_to``
    is null keeps the same daily odds after the logs end.
    """
    window_end = F.lit(as_of + dt.timedelta(days=horizon_days))
    overlap = F.greatest(
        F.lit(0),
        F.datediff(
            F.least(F.coalesce(F.date_add("active_to", 1), window_end), window_end),
            F.greatest("active_from", F.lit(as_of)),
        ),
    )
    return truth.select(
        "user_id",
        "persona",
        (F.lit(1.0) - F.pow(F.lit(1.0) - F.col("daily_purchase_prob"), overlap)).alias(
            "true_probability"
        ),
    )


def generate_events(users: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    """Raw event log lines (JSON, some deliberately broken) with the landing date of each."""
    seed = cfg.seed
    day = F.col("day")
    last_day = F.lit(cfg.end_date - dt.timedelta(days=1))
    visits = (
        users.withColumn(
            "day", F.explode(F.sequence("active_from", F.coalesce("active_to", last_day)))
        )
        .where(uniform(seed, "visit", F.col("id"), day) < F.col("visit_prob"))
        .withColumn("buys", uniform(seed, "buy", F.col("id"), day) < F.col("buy_given_visit"))
        # A second, browsing-only session on some visit days.
        .withColumn(
            "session_no",
            F.explode(
                F.when(
                    uniform(seed, "second", F.col("id"), day) < 0.3, F.array(F.lit(0), F.lit(1))
                ).otherwise(F.array(F.lit(0)))
            ),
        )
    )
    sessions = _with_session_shape(visits, seed)
    events = sessions.withColumn("i", F.explode(F.sequence(F.lit(0), F.col("n_events") - 1)))
    return _to_log_lines(_with_event_fields(events, seed), cfg)


def _with_session_shape(visits: DataFrame, seed: int) -> DataFrame:
    key = (F.col("id"), F.col("day"), F.col("session_no"))
    purchase_session = F.col("buys") & (F.col("session_no") == 0)
    n_events = (
        F.floor(-F.log(F.lit(1.0) - uniform(seed, "n", *key)) * F.col("events_per_session")) + 1
    )
    night = uniform(seed, "night", *key) < F.col("night_share")
    hour = F.when(
        night, F.pmod(F.floor(uniform(seed, "hour", *key) * 8) + 22, F.lit(24))
    ).otherwise(F.floor(uniform(seed, "hour", *key) * 14) + 8)
    start_seconds = hour * 3600 + F.floor(uniform(seed, "minute", *key) * 3000)
    return (
        visits.withColumn("purchase_session", purchase_session)
        .withColumn(
            "n_events", F.when(purchase_session, F.greatest(n_events, F.lit(3))).otherwise(n_events)
        )
        .withColumn(
            "session_start", F.to_timestamp(F.col("day")) + F.make_interval(secs=start_seconds)
        )
        .withColumn(
            "session_id", F.substring(F.sha2(F.concat_ws("|", F.lit(seed), *key), 256), 1, 20)
        )
        .withColumn("mobile", uniform(seed, "mobile", *key) < F.col("mobile_share"))
        .withColumn("channel", _pick(uniform(seed, "channel", *key), CHANNELS))
        # Some sessions start before login: their first events carry only the anonymous id.
        .withColumn(
            "login_at", F.when(uniform(seed, "login", *key) < 0.2, F.lit(2)).otherwise(F.lit(0))
        )
    )


def _with_event_fields(events: DataFrame, seed: int) -> DataFrame:
    key = (F.col("id"), F.col("day"), F.col("session_no"), F.col("i"))
    last = F.col("n_events") - 1
    u_type = uniform(seed, "type", *key)
    search = F.col("search_share")
    browsing_type = (
        F.when(F.col("i") == 0, F.lit("page_view"))
        .when(u_type < search, F.lit("search"))
        .when(u_type < search + 0.55, F.lit("product_view"))
        .when(u_type < search + 0.70, F.lit("page_view"))
        .when(u_type < search + 0.88, F.lit("add_to_cart"))
        .otherwise(F.lit("remove_from_cart"))
    )
    event_type = (
        F.when(F.col("purchase_session") & (F.col("i") == last), F.lit("purchase"))
        .when(F.col("purchase_session") & (F.col("i") == last - 1), F.lit("add_to_cart"))
        .otherwise(browsing_type)
    )
    favourite = uniform(seed, "catpick", *key) < 0.6
    category_idx = (
        F.when(favourite, F.col("favourite_category_idx"))
        .otherwise(F.floor(uniform(seed, "cat", *key) * len(CATEGORIES)))
        .cast("int")
        + 1
    )
    base_price = F.element_at(F.array(*[F.lit(p) for p in CATEGORY_BASE_PRICE]), category_idx)
    price = F.round(
        base_price * F.col("price_scale") * (F.lit(0.5) + uniform(seed, "price", *key) * 1.5), 2
    )
    is_product = event_type.isin("product_view", "add_to_cart", "remove_from_cart", "purchase")
    gap = F.floor(uniform(seed, "gap", *key) * 150 + 20)
    return events.select(
        "id",
        "day",
        F.substring(F.sha2(F.concat_ws("|", F.lit(seed), F.lit("event"), *key), 256), 1, 32).alias(
            "event_id"
        ),
        (F.col("session_start") + F.make_interval(secs=F.col("i") * gap)).alias("event_ts"),
        F.when(F.col("i") >= F.col("login_at"), F.col("user_id")).alias("user_id"),
        F.concat(
            F.lit("anon-"),
            F.substring(F.sha2(F.concat_ws("|", F.lit("anon"), F.col("id")), 256), 1, 16),
        ).alias("anonymous_id"),
        "session_id",
        event_type.alias("event_type"),
        F.when(
            is_product,
            F.format_string(
                "P%02d-%04d", category_idx, F.floor(uniform(seed, "product", *key) * 500)
            ),
        ).alias("product_id"),
        F.when(
            event_type != "page_view",
            F.element_at(F.array(*[F.lit(c) for c in CATEGORIES]), category_idx),
        ).alias("category"),
        F.when(is_product, price).alias("price"),
        F.when(
            event_type.isin("add_to_cart", "purchase"),
            F.floor(uniform(seed, "qty", *key) * 3).cast("int") + 1,
        ).alias("quantity"),
        F.when(F.col("mobile"), F.lit("mobile")).otherwise(F.lit("desktop")).alias("device"),
        "channel",
        "email",
        F.format_string(
            "10.%d.%d.%d", F.col("id") % 250, F.unix_date("day") % 250, F.col("session_no") + 1
        ).alias("ip"),
    )


def _to_log_lines(events: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    seed = cfg.seed
    key = (F.col("event_id"),)
    dirty = uniform(seed, "dirty", *key) < cfg.dirt_rate
    dirt = F.when(dirty, _pick(uniform(seed, "dirt_kind", *key), DIRT_KINDS))
    late = uniform(seed, "late", *key) < cfg.late_rate
    landing_delay = F.when(late, F.floor(uniform(seed, "delay", *key) * 5) + 1).otherwise(F.lit(0))
    shaped = (
        events.withColumn("dirt", dirt)
        .withColumn(
            "copies",
            F.when(F.col("dirt") == "duplicate", F.array(F.lit(0), F.lit(1))).otherwise(
                F.array(F.lit(0))
            ),
        )
        .withColumn("copy", F.explode("copies"))
        .withColumn("landing_date", F.date_add("day", (landing_delay + F.col("copy")).cast("int")))
    )
    ts_text = F.date_format("event_ts", "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
    bad_ts = F.when(uniform(seed, "badts", *key) < 0.5, F.lit("31/02/2026 25:61")).otherwise(
        F.lit("2099-01-01T00:00:00.000Z")
    )
    record = F.struct(
        F.when(F.col("dirt") == "missing_event_id", F.lit(None))
        .otherwise(F.col("event_id"))
        .alias("event_id"),
        F.when(F.col("dirt") == "bad_timestamp", bad_ts).otherwise(ts_text).alias("event_ts"),
        F.when(F.col("dirt") == "missing_ids", F.lit(None))
        .otherwise(F.col("user_id"))
        .alias("user_id"),
        F.when(F.col("dirt") == "missing_ids", F.lit(None))
        .otherwise(F.col("anonymous_id"))
        .alias("anonymous_id"),
        "session_id",
        "event_type",
        "product_id",
        "category",
        F.when(F.col("dirt") == "negative_price", -F.abs(F.coalesce("price", F.lit(9.99))))
        .otherwise(F.col("price"))
        .alias("price"),
        "quantity",
        "device",
        "channel",
        "email",
        "ip",
    )
    line = F.to_json(record)
    line = F.when(F.col("dirt") == "malformed", F.substring(line, 1, 40)).otherwise(line)
    return shaped.select(
        F.col("landing_date").cast("string").alias("landing_date"), line.alias("value")
    )
