"""Config rules and field mappings are an allowlisted expression language.

Attacks are rejected when the config loads, naming the file, the key and the construct;
every place Spark evaluates config text gets the checked, re-rendered SQL; and on valid
rules the re-rendered SQL gives what the text as written gives.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlglot import exp

from tests.helpers import REPO, TEST_KEY, write_conf
from userprofile.config import CsvLayout, EventSource, TagRule, load_settings
from userprofile.config.expressions import FUNCTIONS, checked_sql, parse_rule
from userprofile.config.rules import analysis_error, first_matching
from userprofile.errors import ConfigError
from userprofile.ingest.layouts import reader
from userprofile.profile.tags import tags

GETENV = "'java.lang.System', 'getenv', 'USERPROFILE_PSEUDONYM_KEY'"

# (tag rule, what the message must name). Every rule reads only known columns, so
# without the language check each one would load.
TAG_ATTACKS = [
    ("(SELECT count(*) FROM some_other_table) > 0", "subqueries are not allowed"),
    ("(SELECT count(*) FROM some_other_table) > 0", "table reference some_other_table"),
    (f"java_method({GETENV}) IS NOT NULL", "function java_method is not allowed"),
    (f"cast(reflect({GETENV}) AS int) > 0", "function reflect is not allowed"),
    (f"abs(length(reflect({GETENV}))) > 0", "function reflect is not allowed"),
    (f"coalesce(segment_name, reflect({GETENV})) = 'x'", "function reflect is not allowed"),
    ("revenue_90d IN (SELECT revenue_90d FROM user_features)", "subqueries are not allowed"),
    ("EXISTS(SELECT 1 FROM user_profile)", "table reference user_profile"),
    (
        f"exists(map_keys(category_affinity), c -> reflect({GETENV}) = c)",
        "function reflect is not allowed",
    ),
    ("current_user() = 'admin'", "function current_user is not allowed"),
    ("current_user = 'admin'", "function current_user is not allowed"),
    ("user() = 'admin'", "function user is not allowed"),
    ("user = 'admin'", "user is not allowed (Spark reads it as the function user())"),
    ("`session_user` = 'admin'", "session_user is not allowed"),
    ("session_user() = 'admin'", "function session_user is not allowed"),
    ("current_database() = 'x'", "function current_database is not allowed"),
    ("current_catalog() = 'x'", "function current_catalog is not allowed"),
    ("input_file_name() = 'x'", "function input_file_name is not allowed"),
    ("rand() > 0.5", "function rand is not allowed"),
    ("uuid() = 'x'", "function uuid is not allowed"),
    ("read_files('/etc/passwd') IS NOT NULL", "function read_files is not allowed"),
    ("secret('scope', 'key') = 'x'", "function secret is not allowed"),
    ("my_udf(revenue_90d) > 1", "function my_udf is not allowed"),
    ("revenue_90d > 1 -- harmless\n OR reflect('a', 'b') IS NULL", "function reflect"),
    ("revenue_90d > 1; DROP TABLE user_profile", "multiple statements are not allowed"),
    ("revenue_90d > 1;;", "multiple statements are not allowed"),
    ("`reflect`('java.lang.System', 'getenv', 'X') IS NULL", "function reflect is not allowed"),
    ("ReFlEcT('java.lang.System', 'getenv', 'X') IS NULL", "function reflect is not allowed"),
    ("`java_method`('java.lang.System', 'getenv', 'X') IS NULL", "function java_method"),
    ("count(*) > 1", "function count is not allowed (aggregate)"),
    ("sum(revenue_90d) OVER () > 1", "window functions (OVER) are not allowed"),
    ("size(array(*)) > 0", "* is not allowed"),
    ("user_features.revenue_90d > 1", "qualified name user_features.revenue_90d"),
    ("default.my_udf(revenue_90d) > 1", "qualified names and struct fields"),
    ("revenue_90d > :limit", "parameters are not allowed"),
    ("cast(revenue_90d AS array<int>) IS NULL", "cast to ARRAY<INT> is not allowed"),
    ("transform(array(1), x -> x)[0] = 1", "function transform is not allowed"),
]


def _base(tmp_path: Path, **sections: Any) -> Path:
    return write_conf(
        tmp_path / "rules.yaml", {"extends": str(REPO / "conf/base.yaml"), **sections}
    )


def _load_error(conf: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(conf)
    return str(caught.value)


@pytest.mark.parametrize(("rule", "construct"), TAG_ATTACKS)
def test_tag_rule_attacks_are_rejected_at_load(tmp_path: Path, rule: str, construct: str) -> None:
    tag = {"name": "probe", "description": "d", "rule": rule}
    conf = _base(tmp_path, tags=[{"name": "ok", "description": "d", "rule": "true"}, tag])
    message = _load_error(conf)
    assert f"{conf}: tags[1].rule (tag 'probe'): " in message
    assert construct in message


def test_rejected_function_lists_the_allowed_ones(tmp_path: Path) -> None:
    tag = {"name": "probe", "description": "d", "rule": f"reflect({GETENV}) IS NULL"}
    message = _load_error(_base(tmp_path, tags=[tag]))
    assert "function reflect is not allowed; allowed functions: abs, array," in message


@pytest.mark.parametrize(
    ("section", "construct"),
    [
        ({"segmentation": {"names": [{"name": "vip", "when": "rand() > 0.5"}]}}, "function rand"),
        (
            {"rfm": {"segments": [{"name": "all", "when": f"java_method({GETENV}) IS NULL"}]}},
            "function java_method",
        ),
    ],
)
def test_segment_rule_attacks_are_rejected_at_load(
    tmp_path: Path, section: dict[str, Any], construct: str
) -> None:
    message = _load_error(_base(tmp_path, **section))
    key = "segmentation.names[0].when (segment name 'vip')"
    if "rfm" in section:
        key = "rfm.segments[0].when (RFM segment 'all')"
    assert f"{tmp_path / 'rules.yaml'}: {key}: {construct} is not allowed" in message


MAPPED = {"event_ts": "ts", "event_type": "'purchase'", "user_id": "customer"}


@pytest.mark.parametrize(
    ("layout", "price", "construct"),
    [
        ({"format": "csv", "csv": {"columns": ["ts", "customer", "amount"]}},
         f"java_method({GETENV})", "function java_method is not allowed"),
        ({"format": "text", "text": {"columns": ["ts", "customer", "amount"]}},
         "concat(amount, input_file_name())", "function input_file_name is not allowed"),
        ({"format": "regex", "regex": {"pattern": r"(?<ts>\S+) (?<customer>\S+) (?<amount>\S+)"}},
         "(SELECT max(price) FROM silver_events)", "subqueries are not allowed"),
    ],
)  # fmt: skip
def test_field_mapping_attacks_are_rejected_at_load(
    tmp_path: Path, layout: dict[str, Any], price: str, construct: str
) -> None:
    source = {"path": "orders", **layout, "fields": {**MAPPED, "price": price}}
    conf = _base(tmp_path, ingest={"sources": {"orders": source}})
    assert f"{conf}: ingest.sources.orders.fields.price: {construct}" in _load_error(conf)


@pytest.mark.parametrize(
    ("rule", "sent_to_spark"),
    [
        ("segment_name = 'reflect(x)'", "`segment_name` = 'reflect(x)'"),
        (
            r"segment_name = 'x\' OR reflect(1) OR \''",
            r"`segment_name` = 'x\' OR reflect(1) OR \''",
        ),
        ("revenue_90d > 1 /* a comment */", "`revenue_90d` > 1"),
        ("revenue_90d > 1 -- a comment", "`revenue_90d` > 1"),
        (
            "ABS(revenue_90d) > 1 AND Round(revenue_7d) < 2",
            "ABS(`revenue_90d`) > 1 AND ROUND(`revenue_7d`) < 2",
        ),
        ("`abs`(revenue_90d) > 1", "ABS(`revenue_90d`) > 1"),
        (
            "exists(map_keys(category_affinity), user -> user = 'books')",
            "EXISTS(MAP_KEYS(`category_affinity`), `user` -> `user` = 'books')",
        ),
    ],
)
def test_harmless_look_alikes_are_allowed(tmp_path: Path, rule: str, sent_to_spark: str) -> None:
    tag = {"name": "probe", "description": "d", "rule": rule}
    assert load_settings(_base(tmp_path, tags=[tag])).tags[0].rule == rule
    assert checked_sql(rule) == sent_to_spark


def test_a_column_named_like_a_spark_function_must_be_declared() -> None:
    assert checked_sql("nullif(user, '-')", ["user"]) == "NULLIF(`user`, '-')"
    with pytest.raises(ConfigError, match=re.escape("user is not allowed")):
        checked_sql("nullif(user, '-')")
    # A lambda parameter named `user` is not the column outside its lambda.
    with pytest.raises(ConfigError, match=re.escape("user is not allowed")):
        checked_sql("exists(arr, user -> user = 1) AND user = 'root'", ["arr"])


def test_every_place_spark_evaluates_config_text_checks_it(spark: SparkSession) -> None:
    attack = f"cast(reflect({GETENV}) AS int) > 0"
    with pytest.raises(ConfigError, match="function reflect is not allowed"):
        tags([TagRule(name="probe", description="d", rule=attack)])
    with pytest.raises(ConfigError, match="function reflect is not allowed"):
        first_matching([("vip", "recency_days > 1"), ("probe", attack)])
    error = analysis_error(spark, "recency_days double", attack)
    assert error is not None
    assert "function reflect is not allowed" in error
    assert TEST_KEY not in error
    source = EventSource(
        path="orders",
        format="csv",
        csv=CsvLayout(columns=["ts", "customer"], header=False),
        fields={**MAPPED, "price": f"java_method({GETENV})"},
    )
    lines = spark.createDataFrame([], "value string, _source_file string, _file_time timestamp")
    with pytest.raises(ConfigError, match="function java_method is not allowed"):
        reader(source)(lines)


# One call of every allowed function, over the columns of FRAME.
FUNCTION_CALLS = {
    "abs": "abs(b - 10)",
    "array": "array(a, 2)",
    "array_contains": "array_contains(arr, 2)",
    "ceil": "ceil(b)",
    "ceiling": "ceiling(b)",
    "coalesce": "coalesce(n, a)",
    "concat": "concat(s, '-', p)",
    "concat_ws": "concat_ws('/', s, p)",
    "element_at": "element_at(arr, 1)",
    "exists": "exists(map_keys(m), k -> k = 'books')",
    "filter": "filter(arr, x -> x > 1)",
    "floor": "floor(b)",
    "forall": "forall(arr, x -> x > 0)",
    "greatest": "greatest(a, b)",
    "if": "if(a > 1, 'big', 'small')",
    "ifnull": "ifnull(n, 0)",
    "least": "least(a, b)",
    "length": "length(s)",
    "lower": "lower(p)",
    "ltrim": "ltrim(s)",
    "map_keys": "map_keys(m)",
    "map_values": "map_values(m)",
    "nullif": "nullif(s, ' xax ')",
    "nvl": "nvl(n, -1)",
    "regexp_extract": "regexp_extract(p, '^/product/([^/?]+)', 1)",
    "regexp_replace": "regexp_replace(p, '/', '_')",
    "round": "round(b, 1)",
    "rtrim": "rtrim(s)",
    "size": "size(arr)",
    "split": "split(p, '/')",
    "substr": "substr(p, 2)",
    "substring": "substring(p, 10, 3)",
    "trim": "trim(s)",
    "try_divide": "try_divide(b, n)",
    "upper": "upper(s)",
}
OPERATORS = [
    "a > 1 AND NOT b <= 2.5 OR s IS NULL",
    "a <=> n",
    "NOT a <=> n",
    "b BETWEEN 1 AND 3",
    "a NOT BETWEEN 1 AND 2",
    "s IN (' xax ', 'y')",
    "s NOT IN ('y')",
    "p LIKE '/product/%'",
    "p NOT LIKE '/product/%'",
    "p ILIKE '/PRODUCT/%'",
    "p RLIKE '(?i)^/product/p-'",
    "CASE WHEN a > 1 THEN 'x' WHEN a = 1 THEN 'one' ELSE 'z' END",
    "CASE a WHEN 1 THEN 'one' END",
    "cast(b AS int) + try_cast(q AS int)",
    "CAST(-try_cast(q AS int) AS string)",
    "try_cast(q AS decimal(10, 2))",
    "a DIV 2 + a % 2 - -a * 2 / 4",
    "(a + 1) * 2",
    "- -a + a - -1",
    "s || p",
    "m['books'] > 0.5",
    "arr[0]",
    "n IS NOT NULL AND (n > 1) IS NOT TRUE",
    "1L + 1.5BD + 1D",
    "DATE '2020-01-01'",
    "'it''s'",
    "'it\\'s \\\\ \\u0041'",
    '"double quoted"',
    "TRUE AND NOT FALSE",
    "a > 1 /* comment */",
    "trim(BOTH 'x' FROM s)",
    "nvl(NULL, 1)",
]
FRAME_SCHEMA = (
    "a int, b double, n int, s string, p string, q string, arr array<int>, m map<string,double>"
)
FRAME_ROWS = [
    (1, 2.5, None, " xax ", "/product/P-17?x=1", "3", [1, 2], {"books": 0.7}),
    (3, -1.0, 5, None, None, "x", None, None),
]


@pytest.fixture(scope="module")
def frame(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(FRAME_ROWS, FRAME_SCHEMA)


@pytest.mark.parametrize("rule", [*FUNCTION_CALLS.values(), *OPERATORS])
def test_rerendered_sql_evaluates_as_written(frame: DataFrame, rule: str) -> None:
    rendered = checked_sql(rule, frame.columns)
    rows = frame.select(F.expr(rule).alias("written"), F.expr(rendered).alias("sent")).collect()
    assert [r.sent for r in rows] == [r.written for r in rows], rendered


def test_every_allowed_function_is_evaluated() -> None:
    assert set(FUNCTION_CALLS) == set(FUNCTIONS)


@pytest.mark.parametrize(("name", "call"), FUNCTION_CALLS.items())
def test_allowed_functions_parse_to_their_node(name: str, call: str) -> None:
    # Guards a sqlglot upgrade: the allowlist is by node, so each name must map as listed.
    assert type(parse_rule(call)) is FUNCTIONS[name]


@pytest.mark.parametrize(
    "literal",
    [
        r"'it\'s'",
        r"'a\\'",
        r"'\u0027 OR 1=1'",
        r"'\047) OR reflect(1) OR (\047'",
        r"'a\nb'",
        r"'\%_\d\0'",
        "'*/ -- reflect('",
    ],
)
def test_spark_reads_the_literal_that_was_checked(spark: SparkSession, literal: str) -> None:
    tree = parse_rule(literal)
    assert isinstance(tree, exp.Literal)
    value = spark.range(1).select(F.expr(checked_sql(literal)).alias("v")).first()
    assert value is not None
    assert value.v == tree.this
