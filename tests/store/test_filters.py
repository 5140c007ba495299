"""The analysts' filter language: parsing, errors, limits, hostile input, compilation to bound SQL.

Compiled filters run against the real ``metric`` table joined to ``component``/``execution``/
``job`` on every backend (the ``store`` fixture); property tests check that any text either parses
or fails cleanly and that compiled SQL never carries a user value as text.
"""

from __future__ import annotations

import contextlib
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from etl_meta.errors import ValidationError
from etl_meta.filters import parse as filters
from etl_meta.filters.parse import (
    MAX_DEPTH,
    MAX_IN_ITEMS,
    MAX_LENGTH,
    MAX_TERMS,
    And,
    Compare,
    FilterSyntaxError,
    In,
    IsNull,
    Like,
    Node,
    Not,
    Or,
    check_limits,
    parse_filter,
    render_filter,
)
from etl_meta.filters.sql import FieldSpec, compile_filter, filter_clause
from etl_meta.models import Component, Execution, Job, JobTag, Tag, metric_points
from tests.factories import T0

HOSTILE = "'; drop table metric; --"
PROPERTY = settings(max_examples=200, deadline=None)


def job_tag(key, predicate):
    """``tag.<key>``: the metric's job carries tag ``key`` (with a value matching ``predicate``)."""
    query = (
        sa.select(JobTag.job_id)
        .join(Tag, Tag.id == JobTag.tag_id)
        .where(JobTag.job_id == Job.id, Tag.key == key)
    )
    if predicate is not None:
        query = query.where(predicate(Tag.value))
    return query.exists()


FIELDS = {
    "job": FieldSpec(Job.name),
    "component": FieldSpec(Component.name),
    "name": FieldSpec(metric_points.c.name),
    "status": FieldSpec(Execution.status),
    "value": FieldSpec(metric_points.c.value, "number"),
    "step": FieldSpec(metric_points.c.step, "number"),
    "attempt": FieldSpec(metric_points.c.attempt, "number"),
    "recorded_at": FieldSpec(metric_points.c.recorded_at, "timestamp"),
    "ended_at": FieldSpec(Execution.ended_at, "timestamp"),
    "archived": FieldSpec(Job.is_archived, "boolean"),
    "tag": FieldSpec(tag_condition=job_tag),
}


def metric_query(where: sa.ColumnElement[bool]) -> sa.Select:
    return (
        sa.select(Job.name, metric_points.c.name)
        .select_from(metric_points)
        .join(Component, Component.id == metric_points.c.component_id)
        .join(Execution, Execution.id == metric_points.c.execution_id)
        .join(Job, Job.id == Execution.job_id)
        .where(where)
    )


def c(field: str, op: str, value) -> Compare:
    return Compare(field, op, value)


def syntax_error(text: str) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    return caught.value


def compile_error(text: str, fields=FIELDS) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as caught:
        filter_clause(text, fields)
    return caught.value


# --- parsing ----------------------------------------------------------------------------------


def test_the_analysts_example_parses_with_and_binding_tighter_than_or():
    node = parse_filter(
        "job = 'sales' and name in ('rows','nulls') and value > 0 or tag.env = 'prod'"
    )
    assert node == Or(
        (
            And((c("job", "=", "sales"), In("name", ("rows", "nulls")), c("value", ">", 0))),
            c("tag.env", "=", "prod"),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1 or b = 2 and c = 3", Or((c("a", "=", 1), And((c("b", "=", 2), c("c", "=", 3)))))),
        ("(a = 1 or b = 2) and c = 3", And((Or((c("a", "=", 1), c("b", "=", 2))), c("c", "=", 3)))),
        ("not a = 1 and b = 2", And((Not(c("a", "=", 1)), c("b", "=", 2)))),
        ("not (a = 1 and b = 2)", Not(And((c("a", "=", 1), c("b", "=", 2))))),
        ("not not a = 1", Not(Not(c("a", "=", 1)))),
        ("a = 1 or not b = 2 or c = 3", Or((c("a", "=", 1), Not(c("b", "=", 2)), c("c", "=", 3)))),
        ("((a = 1))", c("a", "=", 1)),
        (
            "a = 1 and (b = 2 and c = 3)",
            And((c("a", "=", 1), And((c("b", "=", 2), c("c", "=", 3))))),
        ),
        (
            "A = 1 AND b = 2 Or NOT c = 3",
            Or((And((c("A", "=", 1), c("b", "=", 2))), Not(c("c", "=", 3)))),
        ),
        ("job='x'and value>0", And((c("job", "=", "x"), c("value", ">", 0)))),
        (" \t\n a\r\n=\t1 ", c("a", "=", 1)),
    ],
)
def test_precedence_is_not_then_and_then_or_and_keywords_ignore_case(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = 1", c("x", "=", 1)),
        ("x != 1", c("x", "!=", 1)),
        ("x <> 1", c("x", "!=", 1)),
        ("x < 1", c("x", "<", 1)),
        ("x <= 1", c("x", "<=", 1)),
        ("x > 1", c("x", ">", 1)),
        ("x >= 1", c("x", ">=", 1)),
        ("x in (1, 'a', true)", In("x", (1, "a", True))),
        ("x IN ('only')", In("x", ("only",))),
        ("x not in (1,2)", In("x", (1, 2), negated=True)),
        ("x like 'a%_'", Like("x", "a%_")),
        ("x NOT LIKE 'a%'", Like("x", "a%", negated=True)),
        ("x is null", IsNull("x")),
        ("x IS NOT NULL", IsNull("x", negated=True)),
    ],
)
def test_every_operator(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'it''s'", "it's"),
        ("''", ""),
        ("''''", "'"),
        ("'a''''b'", "a''b"),
        ("'%_\\'", "%_\\"),
        ("'héllo ✓ 数据'", "héllo ✓ 数据"),
        ("'2026-01-31T12:00:00Z'", "2026-01-31T12:00:00Z"),
        ("'tab\tand\nnewline'", "tab\tand\nnewline"),
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("3.5", 3.5),
        ("-0.25", -0.25),
        ("1.", 1.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("2.5E-3", 0.0025),
        ("-1e+2", -100.0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("true", True),
        ("TRUE", True),
        ("False", False),
    ],
)
def test_literals(literal, value):
    node = parse_filter(f"x = {literal}")
    assert isinstance(node, Compare)
    assert node.value == value
    assert type(node.value) is type(value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tag.env = 'x'", "tag.env"),
        ("tag.dagster/priority = 'x'", "tag.dagster/priority"),
        ("tag.app.kubernetes.io/name='x'", "tag.app.kubernetes.io/name"),
        ("tag.my-key_2 = 'x'", "tag.my-key_2"),
        ("tag.\"any key\" = 'x'", "tag.any key"),
        ('tag."say ""hi""" = \'x\'', 'tag.say "hi"'),
        ("labels.x = 'x'", "labels.x"),
        ("_private = 'x'", "_private"),
    ],
)
def test_fields_and_keyed_fields(text, field):
    node = parse_filter(text)
    assert isinstance(node, Compare)
    assert node.field == field


def test_nodes_remember_where_they_start_without_it_affecting_equality():
    node = parse_filter("a = 1 or  (b = 2 and not c is null)")
    assert isinstance(node, Or)
    right = node.operands[1]
    assert isinstance(right, And)
    assert (node.operands[0].pos, right.pos, right.operands[1].pos) == (0, 11, 21)
    assert right.operands[1].operand.pos == 25
    assert node == parse_filter("a=1 or (b=2 and not c is null)")


def test_ast_is_immutable_and_hashable():
    node = parse_filter("x in (1, 2) and y = 'a'")
    with pytest.raises(AttributeError):
        node.operands = ()  # type: ignore[misc]
    assert hash(node) == hash(parse_filter("x in (1,2) and y='a'"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Compare("x", "==", 1),
        lambda: Compare("1x", "=", 1),
        lambda: Compare("and", "=", 1),
        lambda: Compare("tag.", "=", 1),
        lambda: Compare("x", "=", None),
        lambda: Compare("x", "=", float("nan")),
        lambda: Compare("x", "=", 2**63),
        lambda: Compare("x", "=", "nul\x00"),
        lambda: In("x", ()),
        lambda: Like("x", 5),
        lambda: And((Compare("x", "=", 1),)),
        lambda: Or(()),
    ],
)
def test_nodes_built_in_code_are_validated(build):
    with pytest.raises((TypeError, ValueError)):
        build()


@pytest.mark.parametrize(
    "text",
    [
        "job = 'sales' and name in ('rows', 'nulls') and value > 0 or tag.env = 'prod'",
        "not (a = 1 or b != 'x''y') and c is not null and d not like 'a\\%' and tag.\"a b\" = true",
        "(a = 1 or b = 2) and not (c = 3 and d = 4) or e in (1, 2.5, -1e-05, false)",
        "a = 1 and (b = 2 and c = 3) or (d = 4 or e = 5)",
    ],
)
def test_render_is_canonical_text_that_parses_back(text):
    node = parse_filter(text)
    rendered = render_filter(node)
    assert parse_filter(rendered) == node
    assert render_filter(parse_filter(rendered)) == rendered


# --- errors -------------------------------------------------------------------------------------

EXPECTED_VALUE = "a value (a quoted string, a number, true or false)"


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a field name, 'not' or '('"),
        ("   ", 3, "a field name, 'not' or '('"),
        ("job", 3, filters.EXPECTED_OPERATOR),
        ("job 'x'", 4, filters.EXPECTED_OPERATOR),
        ("job = ", 6, EXPECTED_VALUE),
        ("job = 'sales' and value > )", 26, EXPECTED_VALUE),
        ("job = sales", 6, EXPECTED_VALUE),
        ("job = null", 6, "a value (test for null with 'is null' / 'is not null')"),
        ("job = 'a' 'b'", 10, "'and', 'or' or end of input"),
        ("job = 'a' and", 13, "a field name, 'not' or '('"),
        ("(job = 'a'", 10, "'and', 'or' or ')'"),
        ("job = 'a')", 9, "'and', 'or' or end of input"),
        ("()", 1, "a field name, 'not' or '('"),
        ("not", 3, "a field name, 'not' or '('"),
        ("job in 'a'", 7, "'(' starting a list of values"),
        ("job in ()", 8, EXPECTED_VALUE),
        ("job in ('a',)", 12, EXPECTED_VALUE),
        ("job in ('a' 'b')", 12, "',' or ')'"),
        ("job like 5", 9, "a quoted pattern"),
        ("job is", 6, "'null' or 'not null'"),
        ("job is not 5", 11, "'null'"),
        ("job not = 1", 8, "'in' or 'like' after 'not'"),
        ("job == 1", 5, EXPECTED_VALUE),
        ("job = 'unterminated", 6, "a closing '"),
        ('tag."key = 1', 4, 'a closing "'),
        ("tag. = 1", 4, "a key after '.' (letters, digits, _ . - / or \"quoted\")"),
        ("tag.", 4, "a key after '.' (letters, digits, _ . - / or \"quoted\")"),
        ('tag."" = 1', 4, "a key"),
        ("x = 1.2.3", 4, "a number such as 12, -0.5 or 1e3"),
        ("x = 1abc", 4, "a number such as 12, -0.5 or 1e3"),
        ("x = - 1", 4, EXPECTED_VALUE),
        ("x = 1e999", 4, None),
        ("x = 9223372036854775808", 4, None),
        ("and = 1", 0, "a field name, 'not' or '('"),
        ("x = 1 or or", 9, "a field name, 'not' or '('"),
        ("x $ 1", 2, filters.EXPECTED_OPERATOR),
    ],
)
def test_malformed_input_reports_position_and_what_was_expected(text, position, expected):
    error = syntax_error(text)
    assert error.position == position
    assert error.expected == expected
    assert str(error).startswith(f"filter: at position {position}: ")
    if expected is not None:
        assert f"expected {expected}" in str(error)


def test_error_message_shape_and_validation_error_contract():
    error = syntax_error("job = 'sales' and value > )")
    assert str(error) == f"filter: at position 26: expected {EXPECTED_VALUE}, found ')'"
    assert isinstance(error, ValidationError)
    assert isinstance(error, ValueError)
    assert error.field == "filter"
    assert [p.field for p in error.problems] == ["filter"]


def test_errors_quote_a_short_excerpt_at_most_and_never_a_string_literal():
    error = syntax_error("job = 'a' " + "x" * 500)
    assert "x" * 20 not in str(error)
    assert "x" * 19 + "…" in str(error)
    error = syntax_error("job = 'sales' 'hunter2-password'")
    assert "hunter2" not in str(error) and "sales" not in str(error)
    assert "found a quoted string" in str(error)
    error = compile_error("value = 'hunter2-password'")
    assert "hunter2" not in str(error)
    error = compile_error("y" * 300 + " = 1")
    assert "y" * 20 not in str(error) and "y" * 19 + "…" in str(error)


def test_end_of_input_and_unknown_characters_are_described():
    assert str(syntax_error("job =")).endswith("found end of input")
    assert str(syntax_error("job § 1")).endswith("found the character '§' (U+00A7)")
    assert str(syntax_error("job \u202e= 1")).endswith("found the character U+202E")


# --- limits -------------------------------------------------------------------------------------


def test_length_limit():
    padding = MAX_LENGTH - len("x = ''")
    assert parse_filter("x = '" + "a" * padding + "'") == c("x", "=", "a" * padding)
    error = syntax_error("x = '" + "a" * (padding + 1) + "'")
    assert error.position == MAX_LENGTH
    assert "longer than 2000 characters" in str(error)


def test_nesting_limit_counts_parentheses_and_not():
    assert parse_filter("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH) == c("a", "=", 1)
    assert isinstance(parse_filter("not " * MAX_DEPTH + "a = 1"), Not)
    mixed = "not (" * (MAX_DEPTH // 2) + "a = 1" + ")" * (MAX_DEPTH // 2)
    assert isinstance(parse_filter(mixed), Not)
    error = syntax_error("(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1))
    assert (error.position, "nested deeper than 20 levels" in str(error)) == (MAX_DEPTH, True)
    error = syntax_error("not " * (MAX_DEPTH + 1) + "a = 1")
    assert error.position == 4 * MAX_DEPTH
    error = syntax_error("not (" * (MAX_DEPTH // 2) + "not a = 1" + ")" * (MAX_DEPTH // 2))
    assert error.position == 5 * (MAX_DEPTH // 2)


def test_term_limit():
    ok = " or ".join(["a=1"] * MAX_TERMS)
    assert len(parse_filter(ok).operands) == MAX_TERMS
    error = syntax_error(ok + " or a=1")
    assert error.position == len(ok) + 4
    assert "more than 200 conditions" in str(error)


def test_in_list_limit(monkeypatch):
    # 1000 values never fit in 2000 characters; lift the length limit to reach the list limit.
    monkeypatch.setattr(filters, "MAX_LENGTH", 10_000)
    values = ",".join(["1"] * MAX_IN_ITEMS)
    assert len(parse_filter(f"a in ({values})").values) == MAX_IN_ITEMS
    error = syntax_error(f"a in ({values},2)")
    assert error.position == len(f"a in ({values},")
    assert "more than 1000 values" in str(error)


def test_limits_apply_to_asts_built_in_code_without_recursion():
    deep: Node = c("a", "=", 1)
    for _ in range(50_000):
        deep = Not(deep)
    for check in (check_limits, render_filter, lambda n: compile_filter(n, FIELDS)):
        with pytest.raises(FilterSyntaxError, match="nested deeper"):
            check(deep)
    at_limit: Node = c("a", "=", 1)
    for _ in range(MAX_DEPTH):
        at_limit = Not(at_limit)
    check_limits(at_limit)
    with pytest.raises(FilterSyntaxError, match="more than 200 conditions"):
        check_limits(Or(tuple(c("a", "=", i) for i in range(MAX_TERMS + 1))))
    with pytest.raises(FilterSyntaxError, match="more than 1000 values"):
        compile_filter(In("value", tuple(range(MAX_IN_ITEMS + 1))), FIELDS)
    with pytest.raises(TypeError):
        check_limits(And((c("a", "=", 1), "b = 2")))  # type: ignore[arg-type]


def test_limits_are_checked_as_the_parser_counts_them_on_rendered_text():
    node: Node = c("a", "=", 1)
    for _ in range(MAX_DEPTH // 2):
        node = Not(And((node, c("b", "=", 2))))  # renders as "not (... and b = 2)": two levels
    check_limits(node)
    assert parse_filter(render_filter(node)) == node
    with pytest.raises(FilterSyntaxError):
        check_limits(Not(node))


# --- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("'; DROP TABLE job; --", 0),
        ("job = ''; DROP TABLE job; --'", 8),
        ("job = 'x'; drop table job", 9),
        ("job = 'x' -- comment", 10),
        ("job = 'x' /* c */", 10),
        ("1=1 or", 0),
        ("job = 'a' or 1=1", 13),
        ("ｊｏｂ = 'sales'", 0),
        ("job ＝ 'sales'", 4),
        ("job = 'x' ａｎｄ value > 0", 10),
        ("job = ＇sales＇", 6),
        ("value = ١٢", 8),
        ("job\u00a0= 'x'", 3),
        ("job = 'a\x00b'", 8),
        ("job\x00 = 'x'", 3),
        ("tag.\"a\x00\" = 'x'", 6),
        ("job = 'x\x1b[31m'", 8),
        ("job = '\ud800'", 7),
        ('job = "sales"', 6),
        ("job = `sales`", 6),
        ("job = $$sales$$", 6),
        ("job = :param", 6),
        ("job = %(p)s", 6),
        ("job = ?", 6),
        ("job = 'a' union select 1", 10),
        ("job = sales()", 6),
        ("x" * 1_000_000, MAX_LENGTH),
        ("(" * 100_000, MAX_LENGTH),
        ("(" * 1999, MAX_DEPTH),
        ("not " * 499 + "a", 4 * MAX_DEPTH),
        ("'" * 1999, 0),
        ("a in (" + "1," * 996 + ")", 1998),
    ],
)
def test_hostile_input_is_rejected(text, position):
    assert syntax_error(text).position == position


@pytest.mark.parametrize(
    "text",
    [
        f"name = '{HOSTILE.replace(chr(39), chr(39) * 2)}'",
        "name = 'x'' or ''1''=''1'",
        "job = 'sales\\'' or 1=1 --'",
        "name like '%''; delete from job; --%'",
        "tag.\"env'; drop table tag; --\" = 'x'",
    ],
)
def test_sql_in_values_is_just_data(text):
    node = parse_filter(text)
    assert isinstance(node, Compare | Like)
    for dialect in (postgresql.psycopg.dialect(), sqlite.dialect()):
        sql = str(metric_query(compile_filter(node, FIELDS)).compile(dialect=dialect))
        assert "drop" not in sql.lower() and "delete" not in sql.lower() and "'1'" not in sql


# --- compilation (no database) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("value = 'x'", "field 'value' is a number field: expected a number, found a string"),
        ("value = true", "field 'value' is a number field: expected a number, found a boolean"),
        ("value in (1, '2')", "field 'value' is a number field: expected a number, found a string"),
        ("value like '1%'", "field 'value' is a number field: 'like' applies to text fields only"),
        ("name = 5", "field 'name' is a text field: expected a quoted string, found a number"),
        ("name not in ('a', false)", "field 'name' is a text field: expected a quoted string"),
        ("archived > true", "field 'archived' is a boolean field: '>' does not apply"),
        ("archived = 'yes'", "field 'archived' is a boolean field: expected true or false"),
        ("archived like 't%'", "field 'archived' is a boolean field: 'like' applies"),
        ("recorded_at = 5", "field 'recorded_at' is a timestamp field: expected a quoted ISO 8601"),
        ("recorded_at > 'yesterday'", "field 'recorded_at' is a timestamp field: expected"),
        ("recorded_at > '0001-01-01T00:00:00+05:00'", "is a timestamp field"),
        ("recorded_at like '2026%'", "'like' applies to text fields only"),
        ("tag.env = 5", "field 'tag.env' is a text field: expected a quoted string"),
        ("name like 'a\\b'", "'\\' must precede %, _ or \\"),
        ("name like 'trailing\\'", "'\\' must precede %, _ or \\"),
    ],
)
def test_type_errors_name_the_field(text, message):
    error = compile_error("job = 'a' and " + text)
    assert message in str(error)
    assert error.position == len("job = 'a' and ")


def test_unknown_fields_are_named_with_the_allowed_ones():
    error = compile_error("job = 'a' or jobb = 'b'")
    assert error.position == 13
    assert str(error) == (
        "filter: at position 13: unknown field 'jobb'; the fields are archived, attempt, "
        "component, ended_at, job, name, recorded_at, status, step, tag.<key>, value"
    )
    assert "unknown field 'job.name'" in str(compile_error("job.name = 'a'"))
    assert "unknown field 'label.x'" in str(compile_error("label.x = 'a'"))
    assert "unknown field 'Job'" in str(compile_error("Job = 'a'"))  # names are case-sensitive
    assert "field 'tag' needs a key, as in tag.<key>" in str(compile_error("tag = 'x'"))
    assert "the fields are (none)" in str(compile_error("job = 'a'", {}))


def test_a_dotted_name_can_be_an_ordinary_field():
    fields = {"job.name": FieldSpec(Job.name), "tag": FieldSpec(tag_condition=job_tag)}
    sql = str(filter_clause("job.name = 'a' and tag.name = 'b'", fields))
    assert "job.name = :param_1" in sql and "EXISTS" in sql


def test_field_spec_is_checked():
    with pytest.raises(ValueError, match="kind"):
        FieldSpec(Job.name, "string")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        FieldSpec()
    with pytest.raises(ValueError, match="exactly one"):
        FieldSpec(Job.name, tag_condition=job_tag)


def test_values_are_bound_parameters_of_the_right_type():
    clause = filter_clause(
        "name = 'a' and value in (1, 2.5) and step > 3 and recorded_at >= '2026-01-31' "
        "and ended_at < '2026-02-01T03:00:00+02:00' and archived = false "
        "and name not like 'x\\%%' and tag.env is null",
        FIELDS,
    )
    compiled = clause.compile(dialect=postgresql.psycopg.dialect())
    assert list(compiled.params.values()) == [
        "a",
        [1, 2.5],
        3,
        datetime(2026, 1, 31, tzinfo=UTC),
        datetime(2026, 2, 1, 1, tzinfo=UTC),
        False,
        "x\\%%",
        "env",
    ]
    sql = str(compiled)
    assert "metric.value IN (__[POSTCOMPILE_param_2])" in sql
    assert "metric.step > %(param_3)s::BIGINT" in sql
    assert "metric.name NOT ILIKE %(param_7)s::VARCHAR ESCAPE '\\'" in sql
    assert "NOT (EXISTS (SELECT job_tag.job_id" in sql
    sqlite_sql = str(clause.compile(dialect=sqlite.dialect()))
    assert "lower(metric.name) NOT LIKE lower(?) ESCAPE '\\'" in sqlite_sql


def test_a_tag_condition_is_not_called_when_the_value_is_wrong():
    calls = []
    fields = {"tag": FieldSpec(tag_condition=lambda key, pred: calls.append(key) or sa.true())}
    with pytest.raises(FilterSyntaxError):
        filter_clause("tag.env = 1", fields)
    assert calls == []


# --- against the database, on every backend ---------------------------------------------------


@pytest.fixture
def metrics(store, factory):
    """Three jobs' metrics; returns every (job, metric name) pair recorded."""
    factory.job(name="sales", tags={"env": "prod", "team": "finance"})
    factory.job(name="marketing", tags={"env": "dev", "dagster/priority": "high"})
    factory.job(name="legacy")
    hour = timedelta(hours=1)
    runs = {
        "sales": factory.finished_run("sales", run_id="s1"),
        "marketing": factory.execution("marketing", run_id="m1"),
        "legacy": factory.finished_run("legacy", run_id="l1"),
    }
    points = {
        "sales": [
            ("extract", "rows", 100, 0, 1, T0),
            ("extract", "nulls", 0, 0, 1, T0),
            ("load", "bytes", 1.5e6, 0, 1, T0 + hour),
            ("load", HOSTILE, 7, 0, 1, T0 + hour),
            ("load", "100%_done", 1, 0, 1, T0 + hour),
        ],
        "marketing": [
            ("extract", "rows", 5, 0, 1, T0 + 2 * hour),
            ("extract", "Rows_Total", -2.5, 3, 2, T0 + 2 * hour),
        ],
        "legacy": [("extract", "rows", 0, 0, 1, T0 - 24 * hour)],
    }
    for job, batch in points.items():
        store.metrics.record(batch, execution_id=runs[job].id)
    store.jobs.archive("legacy")
    return {(job, p[1]) for job, batch in points.items() for p in batch}


def select(store, text: str) -> set[tuple[str, str]]:
    with store.transaction(readonly=True) as session:
        return {tuple(row) for row in session.execute(metric_query(filter_clause(text, FIELDS)))}


SALES = {
    ("sales", "rows"),
    ("sales", "nulls"),
    ("sales", "bytes"),
    ("sales", HOSTILE),
    ("sales", "100%_done"),
}
MARKETING = {("marketing", "rows"), ("marketing", "Rows_Total")}
LEGACY = {("legacy", "rows")}
ROWS = {("sales", "rows"), ("marketing", "rows"), ("legacy", "rows")}

DB_CASES = [
    ("job = 'sales'", SALES),
    ("job != 'sales'", MARKETING | LEGACY),
    ("job <> 'sales' and job <> 'legacy'", MARKETING),
    ("name = 'rows'", ROWS),
    ("name = 'ROWS'", set()),
    ("name in ('rows','nulls') and value > 0", {("sales", "rows"), ("marketing", "rows")}),
    (
        "job = 'sales' and name in ('rows','nulls') and value > 0 or tag.env = 'dev'",
        {("sales", "rows")} | MARKETING,
    ),
    ("job = 'marketing' and (value > 0 or tag.team = 'finance')", {("marketing", "rows")}),
    ("job = 'marketing' and value > 0 or tag.team = 'finance'", {("marketing", "rows")} | SALES),
    ("value <= 0", {("sales", "nulls"), ("marketing", "Rows_Total"), ("legacy", "rows")}),
    ("value < -1", {("marketing", "Rows_Total")}),
    ("value < -1.0e0", {("marketing", "Rows_Total")}),
    ("value >= 1.5e6", {("sales", "bytes")}),
    ("value = 1500000", {("sales", "bytes")}),
    ("value in (0, 5, 7)", ROWS - {("sales", "rows")} | {("sales", "nulls"), ("sales", HOSTILE)}),
    ("value not in (0, 1500000)", SALES - {("sales", "nulls"), ("sales", "bytes")} | MARKETING),
    ("step > 0 and attempt = 2", {("marketing", "Rows_Total")}),
    ("step >= 0.5", {("marketing", "Rows_Total")}),
    ("name like 'rows%'", ROWS | {("marketing", "Rows_Total")}),
    ("name like 'ROWS'", ROWS),
    ("name like '_ows'", ROWS),
    ("name like '100\\%\\_%'", {("sales", "100%_done")}),
    ("name like '%\\_%'", {("sales", "100%_done"), ("marketing", "Rows_Total")}),
    ("name not like '%s%'", {("sales", HOSTILE), ("sales", "100%_done")}),
    ("component = 'load' and job = 'sales'", SALES - {("sales", "rows"), ("sales", "nulls")}),
    ("status = 'running'", MARKETING),
    ("status in ('success', 'no-such-status')", SALES | LEGACY),
    ("ended_at is null", MARKETING),
    ("ended_at is not null", SALES | LEGACY),
    ("ended_at > '2026-01-01T00:00:05Z'", SALES | LEGACY),
    (
        "recorded_at >= '2026-01-01T01:00:00Z'",
        SALES - {("sales", "rows"), ("sales", "nulls")} | MARKETING,
    ),
    ("recorded_at < '2026-01-01'", LEGACY),
    ("recorded_at = '2026-01-01T03:00:00+01:00'", MARKETING),
    ("recorded_at in ('2025-12-31T00:00:00', '2026-01-01 02:00')", LEGACY | MARKETING),
    ("archived = true", LEGACY),
    ("archived != true", SALES | MARKETING),
    ("not archived = true and job = 'marketing'", MARKETING),
    ("tag.env = 'prod'", SALES),
    ("tag.env != 'prod'", MARKETING),
    ("not tag.env = 'prod'", MARKETING | LEGACY),
    ("tag.env is null", LEGACY),
    ("tag.env is not null", SALES | MARKETING),
    ("tag.dagster/priority = 'high'", MARKETING),
    ("tag.\"dagster/priority\" in ('high', 'low')", MARKETING),
    ("tag.env not in ('dev')", SALES),
    ("tag.team like 'FIN%'", SALES),
    ("tag.team not like 'fin%'", set()),
    ('tag."no such key" is null', SALES | MARKETING | LEGACY),
    ("not (job = 'sales' or job = 'marketing')", LEGACY),
    ("not not job = 'legacy'", LEGACY),
    (f"name = '{HOSTILE.replace(chr(39), chr(39) * 2)}'", {("sales", HOSTILE)}),
    ("name like '%drop table%'", {("sales", HOSTILE)}),
    ("name = 'x'' or ''1''=''1'", set()),
    ("name = 'rôws'", set()),
]


def test_compiled_filters_select_exactly_the_matching_rows(store, metrics):
    failures = []
    for text, expected in DB_CASES:
        got = select(store, text)
        if got != expected:
            failures.append((text, sorted(got ^ expected)))
    assert failures == []


def test_hostile_values_are_stored_and_compared_as_data(store, metrics):
    quoted = HOSTILE.replace("'", "''")
    assert select(store, f"name = '{quoted}'") == {("sales", HOSTILE)}
    assert select(store, f"name != '{quoted}' and job = 'sales'") == SALES - {("sales", HOSTILE)}
    assert select(store, f"tag.env = '{quoted}'") == set()
    with store.transaction(readonly=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(metric_points)) == len(metrics)
        assert session.scalar(sa.select(sa.func.count()).select_from(Job)) == 3


# --- properties -----------------------------------------------------------------------------------

#: What a filter literal may hold: no control characters, surrogates or the bidirectional
#: embedding and override marks U+202A–U+202E (nodes.CONTROL_RE refuses them all).
BIDI_MARKS = "\u202a\u202b\u202c\u202d\u202e"
SAFE_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=BIDI_MARKS)
#: Every generated string value is wrapped in ⟪…⟫ so it can be looked for in compiled SQL.
TEXT = st.text(SAFE_CHARS, max_size=12).map(lambda s: f"⟪{s}⟫")
PATTERN = st.lists(
    st.one_of(
        st.text(
            st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\" + BIDI_MARKS)
        ),
        st.sampled_from(["%", "_", "\\%", "\\_", "\\\\"]),
    ),
    max_size=4,
).map(lambda parts: "⟪" + "".join(parts) + "⟫")
NUMBER = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False)
)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
TIMESTAMP = st.builds(
    lambda moment, zone, z: moment.replace(tzinfo=zone).isoformat().replace("+00:00", z),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.one_of(st.none(), st.just(UTC), OFFSETS),
    st.sampled_from(["+00:00", "Z"]),
)
VALUES = {"text": TEXT, "number": NUMBER, "timestamp": TIMESTAMP, "boolean": st.booleans()}
TAG_KEYS = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,20}", fullmatch=True),
    st.text(SAFE_CHARS, min_size=1, max_size=8).map(lambda s: f"⟪{s}⟫"),
)
TAG_FIELDS = TAG_KEYS.map(lambda key: f"tag.{key}")


def terms_for(kind: str, fields: st.SearchStrategy[str]) -> st.SearchStrategy[Node]:
    value = VALUES[kind]
    ops = filters.COMPARISON_OPS if kind != "boolean" else ("=", "!=")
    options = [
        st.builds(Compare, fields, st.sampled_from(ops), value),
        st.builds(In, fields, st.lists(value, min_size=1, max_size=4), st.booleans()),
        st.builds(IsNull, fields, st.booleans()),
    ]
    if kind == "text":
        options.append(st.builds(Like, fields, PATTERN, st.booleans()))
    return st.one_of(options)


TERMS = st.one_of(
    *(
        terms_for(
            kind, st.sampled_from([n for n, s in FIELDS.items() if s.kind == kind and n != "tag"])
        )
        for kind in ("text", "number", "timestamp", "boolean")
    ),
    terms_for("text", TAG_FIELDS),
)
TREES = st.recursive(
    TERMS,
    lambda children: st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=4).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=4).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)


def within_limits(node: Node) -> bool:
    try:
        check_limits(node)
    except FilterSyntaxError:
        return False
    return True


def leaves(node: Node) -> list[Node]:
    if isinstance(node, And | Or):
        return [leaf for child in node.operands for leaf in leaves(child)]
    if isinstance(node, Not):
        return leaves(node.operand)
    return [node]


TOKENS = [
    *"()=<>!,'\".-_%/\\$;",
    *("<=", ">=", "<>", "!=", "''", "' '", "'x'", "'a''b'", "1", "-2", "3.5", "1e3", "1e999"),
    *("and", "or", "not", "NOT", "in", "like", "is", "null", "true", "false"),
    *("job", "value", "tag.env", 'tag."k"', "tag.", "x1", "ｊ", "\x00", " ", "\t"),
]


@PROPERTY
@given(st.text(max_size=300))
def test_any_text_parses_or_fails_with_a_filter_syntax_error(text):
    try:
        node = parse_filter(text)
    except FilterSyntaxError as error:
        assert 0 <= error.position <= len(text)
        assert str(error).startswith(f"filter: at position {error.position}: ")
    else:
        assert parse_filter(render_filter(node)) == node


@PROPERTY
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_any_token_soup_parses_or_fails_with_a_filter_syntax_error(text):
    try:
        node = parse_filter(text)
    except FilterSyntaxError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert parse_filter(render_filter(node)) == node


@PROPERTY
@given(st.integers(0, 3000), st.sampled_from(["(", "not ", "not (", "a=1 or ", "'", "x"]))
def test_deep_or_long_input_never_exhausts_the_stack(count, unit):
    with contextlib.suppress(FilterSyntaxError):
        parse_filter(unit * count + "a = 1" + ")" * count)


@PROPERTY
@given(TREES)
def test_rendered_asts_parse_back_to_the_same_ast(node):
    assume(within_limits(node))
    text = render_filter(node)
    if len(text) <= MAX_LENGTH:
        again = parse_filter(text)
        assert again == node
        assert repr(again) == repr(node)  # same value types too (1 vs 1.0 vs true)


@PROPERTY
@given(TREES)
def test_compiled_sql_carries_values_only_as_bound_parameters(node):
    assume(within_limits(node))
    statement = metric_query(compile_filter(node, FIELDS))
    for dialect in (postgresql.psycopg.dialect(), sqlite.dialect()):
        compiled = statement.compile(dialect=dialect)
        sql = str(compiled)
        assert "⟪" not in sql and "⟫" not in sql
        params: list[object] = []
        for value in compiled.params.values():
            params.extend(value if isinstance(value, list) else [value])
        for leaf in leaves(node):
            values = getattr(leaf, "values", None) or [
                getattr(leaf, "value", getattr(leaf, "pattern", None))
            ]
            kind = FIELDS[leaf.field].kind if leaf.field in FIELDS else "text"
            if isinstance(leaf, IsNull) or kind == "timestamp":
                continue
            for value in values:
                assert any(type(p) is type(value) and p == value for p in params), value
            if leaf.field.startswith("tag."):
                assert leaf.field[4:] in params


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(node=TREES)
def test_random_filters_run_on_the_database(store, metrics, node):
    assume(within_limits(node))
    with store.transaction(readonly=True) as session:
        rows = session.execute(metric_query(compile_filter(node, FIELDS))).all()
    assert {tuple(row) for row in rows} <= metrics


def test_identifier_characters_are_ascii_only():
    for char in string.ascii_letters + "_":
        assert parse_filter(f"{char} = 1") == c(char, "=", 1)
    for char in "é\u017f\u0131\u212a":  # long s, dotless i, Kelvin sign: letters to isalpha()
        assert syntax_error(f"{char} = 1").position == 0
