"""The filter language's immutable AST, its limits, its error and its canonical rendering.

Parsed by :mod:`etl_meta.filters.parse`, compiled by :mod:`etl_meta.filters.sql`.
Nodes are frozen dataclasses; ``pos`` (where the node starts in the input, 0 when built in code)
is informational and takes no part in equality, so ``parse_filter(render_filter(ast)) == ast``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from dataclasses import field as _field

from etl_meta.errors import FieldProblem, ValidationError

MAX_LENGTH = 2000
MAX_DEPTH = 20
MAX_IN_ITEMS = 1000
MAX_TERMS = 200
#: A ``like`` pattern's ``%`` wildcards: each one lets the database try every remaining position
#: of the text, so the work grows with their number (hundreds kept PostgreSQL busy for seconds).
MAX_LIKE_WILDCARDS = 10
#: A ``like`` pattern's length: enough for any name or prefix, and it caps the cost of each try.
MAX_LIKE_LENGTH = 200
_INT64 = 2**63

Value = str | int | float | bool
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not", "in", "like", "is", "null", "true", "false"})
BARE_TAG_KEY_RE = re.compile(r"[A-Za-z0-9_.\-/]+")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: What no stored text holds (see :func:`etl_meta.validation.check_text`): C0 and C1 controls,
#: bidi embeddings and overrides, lone surrogates. A literal holding one could match nothing, and
#: filters are echoed into chart titles and messages.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\ud800-\udfff]")


class FilterSyntaxError(ValidationError):
    """A filter was rejected: ``position`` is the 0-based offset of the fault in the input.

    ``expected`` says in words what would have been valid there (``None`` when the fault is not
    about a missing token, e.g. a limit). ``str(error)`` reads
    ``filter: at position 17: expected a value, found ')'``.
    """

    def __init__(self, position: int, detail: str, *, expected: str | None = None) -> None:
        self.position = position
        self.expected = expected
        self.detail = detail
        super().__init__([FieldProblem("filter", f"at position {position}: {detail}")])
        self.args = (str(self.problems[0]),)


def _check_field(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError("a filter field must be a string")
    prefix, dot, key = name.partition(".")
    if (
        not IDENT_RE.fullmatch(prefix)
        or prefix.lower() in KEYWORDS
        or (dot and (not key or CONTROL_RE.search(key)))
    ):
        raise ValueError("a filter field is an identifier (not a keyword), optionally .<key>")


def _check_value(value: object) -> None:
    if not isinstance(value, str | int | float):
        raise TypeError(f"a filter value must be str, int, float or bool, not {type(value)}")
    if isinstance(value, str) and CONTROL_RE.search(value):
        raise ValueError("a filter string must not contain control characters or surrogates")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a filter number must be finite")
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise ValueError("a filter integer must fit in 64 bits")


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value`` with ``op`` one of ``= != < <= > >=`` (``<>`` is parsed as ``!=``)."""

    field: str
    op: str
    value: Value
    pos: int = _field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_field(self.field)
        _check_value(self.value)
        if self.op not in COMPARISON_OPS:
            raise ValueError(f"unknown comparison operator {self.op!r}")


@dataclass(frozen=True, slots=True)
class In:
    """``field in (v, ...)`` or, when ``negated``, ``field not in (v, ...)``."""

    field: str
    values: tuple[Value, ...]
    negated: bool = False
    pos: int = _field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_field(self.field)
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError("'in' needs at least one value")
        for value in self.values:
            _check_value(value)


@dataclass(frozen=True, slots=True)
class Like:
    """``field like 'pattern'`` (``%`` any run, ``_`` one character, ``\\`` escapes them)."""

    field: str
    pattern: str
    negated: bool = False
    pos: int = _field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_field(self.field)
        if not isinstance(self.pattern, str):
            raise TypeError("a like pattern must be a string")
        _check_value(self.pattern)


@dataclass(frozen=True, slots=True)
class IsNull:
    """``field is null`` or, when ``negated``, ``field is not null``."""

    field: str
    negated: bool = False
    pos: int = _field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_field(self.field)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = _field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    pos: int = _field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operands", tuple(self.operands))
        if len(self.operands) < 2:
            raise ValueError("And needs at least two operands")


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    pos: int = _field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operands", tuple(self.operands))
        if len(self.operands) < 2:
            raise ValueError("Or needs at least two operands")


Node = Or | And | Not | Compare | In | Like | IsNull
Term = Compare | In | Like | IsNull
_NODE_TYPES = (Or, And, Not, Compare, In, Like, IsNull)


def _needs_parens(parent: Node, child: Node) -> bool:
    if isinstance(parent, Or):
        return isinstance(child, Or)
    return isinstance(child, And | Or)


def check_limits(node: Node) -> None:
    """Apply the parser's limits to an AST built in code (iteratively: no recursion)."""
    terms = 0
    stack: list[tuple[object, int]] = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        if not isinstance(current, _NODE_TYPES):
            raise TypeError(f"not a filter node: {type(current).__name__}")
        if depth > MAX_DEPTH:
            raise FilterSyntaxError(current.pos, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(current, Not):  # "not (a and b)" nests twice, as the parser counts it
            stack.append((current.operand, depth + 1 + isinstance(current.operand, And | Or)))
        elif isinstance(current, And | Or):
            stack.extend((c, depth + _needs_parens(current, c)) for c in current.operands)
        else:
            terms += 1
            if terms > MAX_TERMS:
                raise FilterSyntaxError(current.pos, f"more than {MAX_TERMS} conditions")
            if isinstance(current, In) and len(current.values) > MAX_IN_ITEMS:
                raise FilterSyntaxError(current.pos, f"more than {MAX_IN_ITEMS} values in a list")
            if isinstance(current, Like):
                check_like_pattern(current)


def check_like_pattern(node: Like) -> None:
    """Refuse a ``like`` pattern whose matching cost could be unbounded (see the limits)."""
    pattern = node.pattern
    field = short_field(node.field)
    if len(pattern) > MAX_LIKE_LENGTH:
        raise FilterSyntaxError(
            node.pos, f"the pattern for '{field}' is longer than {MAX_LIKE_LENGTH} characters"
        )
    # Escaped ones (\%) are literal and cost nothing: drop every escaped character first.
    wildcards = re.sub(r"\\.", "", pattern).count("%")
    if wildcards > MAX_LIKE_WILDCARDS:
        raise FilterSyntaxError(
            node.pos,
            f"the pattern for '{field}' has {wildcards} '%' wildcards; "
            f"at most {MAX_LIKE_WILDCARDS} are allowed",
        )


def short_field(text: str) -> str:
    """A field name for messages: at most 20 characters (a tag key may be long)."""
    return text if len(text) <= 20 else text[:19] + "…"


def render_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def render_field(name: str) -> str:
    prefix, dot, key = name.partition(".")
    if not dot or BARE_TAG_KEY_RE.fullmatch(key):
        return name
    return prefix + '."' + key.replace('"', '""') + '"'


def render_filter(node: Node) -> str:
    """Canonical text of an AST: ``parse_filter(render_filter(ast)) == ast``."""
    check_limits(node)
    return _render(node)


def _render(node: Node) -> str:
    match node:
        case Or(operands) | And(operands):
            joiner = " or " if isinstance(node, Or) else " and "
            return joiner.join(
                f"({_render(c)})" if _needs_parens(node, c) else _render(c) for c in operands
            )
        case Not(operand):
            inner = _render(operand)
            return f"not ({inner})" if isinstance(operand, And | Or) else f"not {inner}"
        case Compare(name, op, value):
            return f"{render_field(name)} {op} {render_value(value)}"
        case In(name, values, negated):
            listed = ", ".join(render_value(v) for v in values)
            return f"{render_field(name)} {'not in' if negated else 'in'} ({listed})"
        case Like(name, pattern, negated):
            keyword = "not like" if negated else "like"
            return f"{render_field(name)} {keyword} {render_value(pattern)}"
        case IsNull(name, negated):
            return f"{render_field(name)} is {'not null' if negated else 'null'}"
    raise TypeError(f"not a filter node: {type(node).__name__}")
