"""The rule language: the part of Spark SQL that config rules and field mappings may use.

Tag rules, segment-name rules, RFM segment rules and the field mappings of csv/text/regex
sources are written by other teams and run inside our Spark session, next to the
pseudonymisation key. So they are not arbitrary Spark SQL but expressions built from an
allowlist: columns, literals, arithmetic, comparisons, boolean logic, CASE, casts to
simple types, and the pure functions in ``FUNCTIONS``. Anything else (subqueries, tables,
``reflect``, user functions, ``current_user()``, ``rand()``, aggregates, windows, ...) is
rejected when the config loads, naming the construct.

What Spark runs is ``checked_sql``: the validated sqlglot tree rendered again as Spark
SQL, never the text as written, so a difference between how sqlglot and Spark read the
text cannot smuggle in anything the check did not see.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot
import sqlglot.errors
from sqlglot import exp

from userprofile.errors import ConfigError

# Spark function name -> the sqlglot node it parses to (Anonymous: no node of its own).
# Only pure, deterministic functions: no I/O, no session state, no randomness.
FUNCTIONS: dict[str, type[exp.Expr]] = {
    "abs": exp.Abs,
    "array": exp.Array,
    "array_contains": exp.ArrayContains,
    "ceil": exp.Ceil,
    "ceiling": exp.Ceil,
    "coalesce": exp.Coalesce,
    "concat": exp.Concat,
    "concat_ws": exp.ConcatWs,
    "element_at": exp.Bracket,
    "exists": exp.Exists,
    "filter": exp.ArrayFilter,
    "floor": exp.Floor,
    "forall": exp.Anonymous,
    "greatest": exp.Greatest,
    "if": exp.If,
    "ifnull": exp.Coalesce,
    "least": exp.Least,
    "length": exp.Length,
    "lower": exp.Lower,
    "ltrim": exp.Trim,
    "map_keys": exp.MapKeys,
    "map_values": exp.Anonymous,
    "nullif": exp.Nullif,
    "nvl": exp.Coalesce,
    "regexp_extract": exp.RegexpExtract,
    "regexp_replace": exp.RegexpReplace,
    "round": exp.Round,
    "rtrim": exp.Trim,
    "size": exp.ArraySize,
    "split": exp.RegexpSplit,
    "substr": exp.Substring,
    "substring": exp.Substring,
    "trim": exp.Trim,
    "try_divide": exp.SafeDivide,
    "upper": exp.Upper,
}
_FUNCTION_NODES = frozenset(FUNCTIONS.values()) - {exp.Anonymous}
_ANONYMOUS_FUNCTIONS = frozenset(n for n, node in FUNCTIONS.items() if node is exp.Anonymous)

# Operators and other building blocks; matched by exact class, so a subclass is not let in.
STRUCTURE: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Column,
        exp.Identifier,
        exp.Literal,
        exp.Boolean,
        exp.Null,
        exp.Paren,
        exp.Neg,
        exp.Not,
        exp.And,
        exp.Or,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.Mod,
        exp.IntDiv,
        exp.DPipe,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.NullSafeEQ,
        exp.NullSafeNEQ,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.RegexpLike,
        exp.Case,
        exp.If,
        exp.Cast,
        exp.TryCast,
        exp.DataType,
        exp.DataTypeParam,
        exp.Bracket,
        exp.Lambda,
    }
)

# Types a CAST / TRY_CAST may produce (sqlglot reads `string` as TEXT, `timestamp` as TIMESTAMPTZ).
CAST_TYPES: dict[exp.DType, str] = {
    exp.DType.BOOLEAN: "boolean",
    exp.DType.TINYINT: "tinyint",
    exp.DType.SMALLINT: "smallint",
    exp.DType.INT: "int",
    exp.DType.BIGINT: "bigint",
    exp.DType.FLOAT: "float",
    exp.DType.DOUBLE: "double",
    exp.DType.DECIMAL: "decimal",
    exp.DType.TEXT: "string",
    exp.DType.DATE: "date",
    exp.DType.TIMESTAMPTZ: "timestamp",
}

# Names Spark resolves to a function when no column has them, even in backticks
# (`user` is the session's user): a column by such a name must be a declared one.
LITERAL_FUNCTION_NAMES = frozenset(
    {"current_date", "current_timestamp", "current_user", "user", "session_user", "grouping__id"}
)


def parse_rule(text: str) -> exp.Expr:
    """The sqlglot tree of one Spark SQL expression.

    Raises ``ValueError`` saying why if it does not parse or is more than one statement.
    """
    try:
        statements = sqlglot.parse(text, read="spark")
    except sqlglot.errors.SqlglotError as exc:
        raise ValueError(f"does not parse: {str(exc).splitlines()[0]}") from None
    trees = [s for s in statements if s is not None]
    if not trees:
        raise ValueError("is empty")
    if len(statements) != 1:
        raise ValueError("must be one expression: ';' and multiple statements are not allowed")
    return trees[0]


def language_problems(tree: exp.Expr, columns: Collection[str] | None) -> list[str]:
    """What in ``tree`` is outside the rule language (empty if nothing is).

    ``columns``: the declared columns, or None when they are not known here; only
    needed for columns named like one of Spark's ``LITERAL_FUNCTION_NAMES``.
    """
    problems: list[str] = []
    pending = [tree]  # a stack, not recursion: a long chain of ORs is a deep tree
    while pending:
        node = pending.pop()
        found = _node_problems(node, columns)
        problems.extend(p for p in found if p not in problems)
        if not found:  # below a rejected node there is nothing more to say
            pending.extend(reversed(list(node.iter_expressions())))
    if any(p.startswith("function ") for p in problems):
        problems.append(f"allowed functions: {', '.join(FUNCTIONS)}")
    return problems


def rule_problem(text: str, columns: Collection[str]) -> str | None:
    """Without Spark: why ``text`` is not a rule over ``columns``, or None if it is.

    Catches syntax errors, constructs outside the rule language and unknown columns.
    Spark's own analysis (``rules.analysis_error``) still checks types before data is read.
    """
    try:
        tree = parse_rule(text)
    except ValueError as exc:
        return str(exc)
    problems = language_problems(tree, columns)
    unknown = sorted(_column_names(tree) - set(columns))
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    return "; ".join(problems) or None


def checked_sql(text: str, columns: Collection[str] | None = None) -> str:
    """The Spark SQL to run for a config rule: its validated tree, rendered again.

    Raises ConfigError if ``text`` is not in the rule language. Comments are dropped
    and identifiers quoted, so Spark reads exactly the tree that was checked.
    """
    try:
        tree = parse_rule(text)
    except ValueError as exc:
        raise ConfigError(f"rule {text!r} {exc}") from None
    problems = language_problems(tree, columns)
    if problems:
        raise ConfigError(f"rule {text!r} is not allowed: {'; '.join(problems)}")
    return tree.sql(
        dialect="spark",
        comments=False,
        identify=True,
        unsupported_level=sqlglot.errors.ErrorLevel.RAISE,
    )


def referenced_columns(text: str) -> set[str]:
    """Columns a Spark SQL expression reads (lambda parameters are not columns).

    Raises ``ValueError`` if it does not parse.
    """
    return _column_names(parse_rule(text))


def _column_names(tree: exp.Expr) -> set[str]:
    return {c.name for c in tree.find_all(exp.Column) if not c.table and not _is_lambda_variable(c)}


def _is_lambda_variable(column: exp.Column) -> bool:
    """Whether ``column`` names a parameter of a lambda it is inside of."""
    scope = column.find_ancestor(exp.Lambda)
    while scope is not None:
        if not column.table and column.name in {p.name for p in scope.expressions}:
            return True
        scope = scope.find_ancestor(exp.Lambda)
    return False


def _node_problems(node: exp.Expr, columns: Collection[str] | None) -> list[str]:
    """Why this one node is not allowed (empty if it is); children are checked on their own."""
    if type(node) is exp.Column:
        return _listed(_column_problem(node, columns))
    if type(node) is exp.DataType:
        return _listed(_type_problem(node))
    if type(node) in STRUCTURE or type(node) in _FUNCTION_NODES:
        return []
    if type(node) is exp.Anonymous:
        name = node.name.lower()
        return [] if name in _ANONYMOUS_FUNCTIONS else [f"function {name} is not allowed"]
    if isinstance(node, (exp.Query, exp.Subquery)):
        tables = [f"table reference {t.name} is not allowed" for t in node.find_all(exp.Table)]
        return ["subqueries are not allowed", *tables]
    return [_construct_problem(node)]


def _listed(problem: str | None) -> list[str]:
    return [] if problem is None else [problem]


def _column_problem(column: exp.Column, columns: Collection[str] | None) -> str | None:
    if column.table:
        qualified = column.sql(dialect="spark")
        return f"qualified name {qualified} is not allowed (a map key is m['key'])"
    name = column.name
    declared = columns is not None and name in columns
    if name.lower() in LITERAL_FUNCTION_NAMES and not declared and not _is_lambda_variable(column):
        return f"{name} is not allowed (Spark reads it as the function {name.lower()}())"
    return None


def _type_problem(data_type: exp.DataType) -> str | None:
    if data_type.this in CAST_TYPES:
        return None
    allowed = ", ".join(dict.fromkeys(CAST_TYPES.values()))
    return f"cast to {data_type.sql(dialect='spark')} is not allowed; allowed types: {allowed}"


def _construct_problem(node: exp.Expr) -> str:
    """The message for a node outside the language, by what it is."""
    if isinstance(node, exp.Table):
        return f"table reference {node.name} is not allowed"
    if isinstance(node, exp.Star):
        return "* is not allowed"
    if isinstance(node, exp.Window):
        return "window functions (OVER) are not allowed"
    if isinstance(node, exp.AggFunc):
        return f"function {node.sql_name().lower()} is not allowed (aggregate)"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name().lower()} is not allowed"
    if isinstance(node, (exp.Placeholder, exp.Parameter)):
        return "parameters are not allowed"
    if isinstance(node, exp.Dot):
        return "qualified names and struct fields (a.b) are not allowed"
    snippet = node.sql(dialect="spark", comments=False)
    snippet = snippet if len(snippet) <= 40 else snippet[:37] + "..."
    return f"{node.key} ({snippet}) is not allowed"
