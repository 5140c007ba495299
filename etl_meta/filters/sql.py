"""Compile a filter AST into a SQLAlchemy boolean expression over the fields a query exposes.

Each query declares its fields as ``{name: FieldSpec}``; a filter may only name those. Every value
becomes a bound parameter (never SQL text), and values are type-checked against the field's kind
before any SQL is built, so a type mistake is a :class:`FilterSyntaxError` naming the field and
never a database error. ``like`` is case-insensitive on both backends (``ILIKE`` on PostgreSQL,
``lower() LIKE lower()`` on SQLite) and ``\\`` escapes ``%``, ``_`` and itself.

Keyed fields such as ``tag.<key>`` are declared once under their prefix with a ``tag_condition``:
the compiler builds the predicate over the tag's value column and the hook wraps it, typically in
an ``EXISTS`` subquery::

    def job_tag(key, predicate):
        found = sa.select(JobTag.job_id).join(Tag, Tag.id == JobTag.tag_id)
        found = found.where(JobTag.job_id == Job.id, Tag.key == key)
        if predicate is not None:
            found = found.where(predicate(Tag.value))
        return found.exists()

    fields = {"job": FieldSpec(Job.name), "tag": FieldSpec(tag_condition=job_tag)}
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from etl_meta.filters.nodes import short_field as _short
from etl_meta.filters.parse import (
    And,
    Compare,
    FilterSyntaxError,
    In,
    IsNull,
    Like,
    Node,
    Not,
    Or,
    Term,
    Value,
    check_limits,
    parse_filter,
)

FieldKind = Literal["text", "number", "timestamp", "boolean"]
#: Builds a condition on a value column (the compiler supplies it to a ``tag_condition``).
ValuePredicate = Callable[[Any], sa.ColumnElement[bool]]
#: ``(key, predicate)`` -> "the row has tag ``key`` and its value satisfies ``predicate``";
#: ``predicate`` is ``None`` for "the row has tag ``key``" (``is null`` negates it).
TagCondition = Callable[[str, ValuePredicate | None], sa.ColumnElement[bool]]

_KINDS: tuple[str, ...] = get_args(FieldKind)
_ORDERED = frozenset({"text", "number", "timestamp"})
_OPERATORS: dict[str, Callable[[Any, Any], sa.ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """One field a filter may name.

    ``column`` is any SQLAlchemy column expression (or ORM attribute) and ``kind`` says which
    literals it compares with. A keyed field (``tag.<key>``) has no column but a ``tag_condition``
    (see the module docstring); its ``kind`` is the kind of the values behind the keys.
    """

    column: Any = None
    kind: FieldKind = "text"
    tag_condition: TagCondition | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"FieldSpec.kind must be one of {', '.join(_KINDS)}")
        if (self.column is None) == (self.tag_condition is None):
            raise ValueError("a FieldSpec needs exactly one of column and tag_condition")

    @property
    def keyed(self) -> bool:
        return self.tag_condition is not None


def compile_filter(node: Node, fields: Mapping[str, FieldSpec]) -> sa.ColumnElement[bool]:
    """A boolean SQL expression equivalent to ``node`` over ``fields``, with bound values only.

    Raises :class:`FilterSyntaxError` (positioned at the field) for unknown fields and for values
    or operators that do not fit a field's kind; ASTs built in code get the parser's limits.
    """
    check_limits(node)
    return _Compiler(fields).compile(node)


def filter_clause(text: str, fields: Mapping[str, FieldSpec]) -> sa.ColumnElement[bool]:
    """``compile_filter(parse_filter(text), fields)``: analyst text straight to a WHERE clause."""
    return compile_filter(parse_filter(text), fields)


class _Compiler:
    def __init__(self, fields: Mapping[str, FieldSpec]) -> None:
        self.fields = fields

    def compile(self, node: Node) -> sa.ColumnElement[bool]:
        if isinstance(node, Or):
            return sa.or_(*(self.compile(child) for child in node.operands))
        if isinstance(node, And):
            return sa.and_(*(self.compile(child) for child in node.operands))
        if isinstance(node, Not):
            return sa.not_(self.compile(node.operand))
        return self.term(node)

    def term(self, node: Term) -> sa.ColumnElement[bool]:
        spec = self.fields.get(node.field)
        if spec is not None and not spec.keyed:
            return _predicate(spec.column, spec.kind, node, _coerce(spec.kind, node))
        prefix, dot, key = node.field.partition(".")
        spec = self.fields.get(prefix) if dot else spec
        if spec is None or not spec.keyed:
            raise FilterSyntaxError(
                node.pos,
                f"unknown field '{_short(node.field)}'; the fields are {self.allowed()}",
                expected=f"one of the fields {self.allowed()}",
            )
        assert spec.tag_condition is not None
        if not dot:
            raise FilterSyntaxError(
                node.pos,
                f"field '{prefix}' needs a key, as in {prefix}.<key>",
                expected=f"{prefix}.<key>",
            )
        if isinstance(node, IsNull):
            present = spec.tag_condition(key, None)
            return present if node.negated else sa.not_(present)
        values = _coerce(spec.kind, node)  # checked before the hook runs
        return spec.tag_condition(key, lambda column: _predicate(column, spec.kind, node, values))

    def allowed(self) -> str:
        names = [f"{n}.<key>" if s.keyed else n for n, s in sorted(self.fields.items())]
        return ", ".join(names) if names else "(none)"


def _type_error(node: Term, kind: str, problem: str, expected: str) -> FilterSyntaxError:
    article = "an" if kind[0] in "aeiou" else "a"
    return FilterSyntaxError(
        node.pos,
        f"field '{_short(node.field)}' is {article} {kind} field: {problem}",
        expected=expected,
    )


_WANTED = {
    "text": "a quoted string",
    "number": "a number",
    "timestamp": "a quoted ISO 8601 timestamp such as '2026-01-31T12:00:00Z'",
    "boolean": "true or false",
}


def _coerce(kind: str, node: Term) -> tuple[Any, ...]:
    """The node's values converted for ``kind``, or an error naming the field."""
    if isinstance(node, IsNull):
        return ()
    if isinstance(node, Like):
        if kind != "text":
            raise _type_error(node, kind, "'like' applies to text fields only", "=, !=, in or is")
        return (_like_pattern(node),)
    if isinstance(node, Compare) and node.op not in ("=", "!=") and kind not in _ORDERED:
        raise _type_error(node, kind, f"'{node.op}' does not apply", "=, !=, in or is")
    values = node.values if isinstance(node, In) else (node.value,)
    return tuple(_convert(kind, node, value) for value in values)


def _convert(kind: str, node: Term, value: Value) -> Any:
    wanted = _WANTED[kind]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "number" and is_number:
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "timestamp" and isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
            return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        except (ValueError, OverflowError):  # not ISO 8601, or out of range once in UTC
            raise _type_error(node, kind, f"expected {wanted}", wanted) from None
    found = (
        "a boolean"
        if isinstance(value, bool)
        else "a string"
        if isinstance(value, str)
        else "a number"
    )
    raise _type_error(node, kind, f"expected {wanted}, found {found}", wanted)


def _like_pattern(node: Like) -> str:
    pattern = node.pattern
    index = pattern.find(_LIKE_ESCAPE)
    while index >= 0:
        if index + 1 >= len(pattern) or pattern[index + 1] not in "%_\\":
            raise FilterSyntaxError(
                node.pos,
                f"in the pattern for '{_short(node.field)}', '\\' must precede %, _ or \\",
                expected="\\%, \\_ or \\\\",
            )
        index = pattern.find(_LIKE_ESCAPE, index + 2)
    return pattern


def _bind_type(kind: str, column: Any, values: tuple[Any, ...]) -> sa.types.TypeEngine[Any]:
    if kind == "number":
        return sa.Double() if any(isinstance(v, float) for v in values) else sa.BigInteger()
    if kind == "boolean":
        return sa.Boolean()
    if kind == "timestamp":
        # The column's own type knows how the backend stores instants (UTCDateTime on SQLite).
        ctype = getattr(column, "type", None)
        if isinstance(ctype, sa.types.TypeEngine):
            base = getattr(ctype, "impl", ctype)
            if isinstance(base, sa.DateTime):
                return ctype
        return sa.DateTime(timezone=True)
    return sa.String()


def _predicate(
    column: Any, kind: str, node: Term, values: tuple[Any, ...]
) -> sa.ColumnElement[bool]:
    if isinstance(node, IsNull):
        return column.is_not(None) if node.negated else column.is_(None)
    type_ = _bind_type(kind, column, values)
    if isinstance(node, In):
        bound = sa.bindparam(None, list(values), type_=type_, expanding=True)
        return column.not_in(bound) if node.negated else column.in_(bound)
    param = sa.bindparam(None, values[0], type_=type_)
    if isinstance(node, Like):
        match = column.not_ilike if node.negated else column.ilike
        return match(param, escape=_LIKE_ESCAPE)
    return _OPERATORS[node.op](column, param)
