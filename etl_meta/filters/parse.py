"""The analysts' filter language: tokenizer and recursive-descent parser.

``job = 'sales' and name in ('rows', 'nulls') and value > 0 or tag.env = 'prod'`` parses into
the frozen dataclasses of :mod:`etl_meta.filters.nodes` (re-exported here: :class:`Or`,
:class:`And`, :class:`Not`, :class:`Compare`, :class:`In`, :class:`Like`, :class:`IsNull`).
Nothing here knows about fields or SQL: each query compiles the AST against its own fields with
:func:`etl_meta.filters.sql.compile_filter`. Grammar, limits and errors:
``docs/filters.md``.

Input is untrusted: every error is a :class:`FilterSyntaxError` carrying a 0-based ``position``;
messages quote at most a short token of the input and never a string literal. Length, nesting,
list and term limits are checked while parsing, so hostile input cannot exhaust the stack, and a
``like`` pattern's wildcards and length are bounded, so it cannot keep the database busy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import NamedTuple

from etl_meta.filters.nodes import (
    _INT64,
    BARE_TAG_KEY_RE,
    COMPARISON_OPS,
    CONTROL_RE,
    IDENT_RE,
    KEYWORDS,
    MAX_DEPTH,
    MAX_IN_ITEMS,
    MAX_LENGTH,
    MAX_LIKE_LENGTH,
    MAX_LIKE_WILDCARDS,
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
    Term,
    Value,
    check_like_pattern,
    check_limits,
    render_filter,
)

__all__ = [
    "COMPARISON_OPS",
    "MAX_DEPTH",
    "MAX_IN_ITEMS",
    "MAX_LENGTH",
    "MAX_LIKE_LENGTH",
    "MAX_LIKE_WILDCARDS",
    "MAX_TERMS",
    "And",
    "Compare",
    "FilterSyntaxError",
    "In",
    "IsNull",
    "Like",
    "Node",
    "Not",
    "Or",
    "Term",
    "Token",
    "Value",
    "check_like_pattern",
    "check_limits",
    "parse_filter",
    "render_filter",
    "tokenize",
]

_EXCERPT = 20
EXPECTED_OPERATOR = "a comparison operator (=, !=, <, <=, >, >=, in, like, is)"
EXPECTED_TERM = "a field name, 'not' or '('"
EXPECTED_VALUE = "a value (a quoted string, a number, true or false)"

# --- tokenizer ------------------------------------------------------------------------------------


class Token(NamedTuple):
    kind: str  # field keyword string number op ( ) , end invalid
    value: Value | None
    pos: int
    text: str


_SKIP_RE = re.compile(r"[ \t\r\n]*")
_NUMBER_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_TAIL_RE = re.compile(r"[A-Za-z0-9_.]")
_OP_RE = re.compile(r"<=|>=|<>|!=|=|<|>")


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "end of input"
    if token.kind == "string":
        return "a quoted string"
    if token.kind == "number":
        return "a number"
    if token.kind == "invalid":
        char = token.text
        code = f"U+{ord(char):04X}"
        return f"the character '{char}' ({code})" if char.isprintable() else f"the character {code}"
    return f"'{_excerpt(token.text)}'"


def _char_error(text: str, pos: int, expected: str) -> FilterSyntaxError:
    found = _describe(Token("invalid", None, pos, text[pos]))
    return FilterSyntaxError(pos, f"expected {expected}, found {found}", expected=expected)


def _quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """The content of a ``quote``-delimited literal at ``start`` (doubled quote escapes it)."""
    pos = start + 1
    while True:
        end = text.find(quote, pos)
        if end < 0:
            raise FilterSyntaxError(
                start,
                f"the {what} starting here is never closed; expected a closing {quote}",
                expected=f"a closing {quote}",
            )
        if text.startswith(quote, end + 1):
            pos = end + 2
            continue
        raw = text[start + 1 : end]
        bad = CONTROL_RE.search(raw)
        if bad:
            at = start + 1 + bad.start()
            raise FilterSyntaxError(
                at, f"character U+{ord(bad.group()):04X} is not allowed in a {what}"
            )
        return raw.replace(quote * 2, quote), end + 1


def _number(text: str, pos: int, raw: str) -> int | float:
    if _NUMBER_TAIL_RE.match(text, pos + len(raw)):
        wanted = "a number such as 12, -0.5 or 1e3"
        raise FilterSyntaxError(pos, f"malformed number; expected {wanted}", expected=wanted)
    if not any(c in raw for c in ".eE"):
        number: int | float = int(raw)
        ok = -_INT64 <= number < _INT64
    else:
        number = float(raw)
        ok = math.isfinite(number)
    if not ok:
        raise FilterSyntaxError(pos, "number out of range (64-bit integers, finite decimals)")
    return number


def tokenize(text: str) -> Iterator[Token]:
    """Yield the tokens of ``text`` lazily (so the leftmost error is the one reported)."""
    pos = 0
    size = len(text)
    while True:
        pos = _SKIP_RE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= size:
            yield Token("end", None, size, "")
            return
        char = text[pos]
        if char == "'":
            value, end = _quoted(text, pos, "'", "string")
            yield Token("string", value, pos, text[pos:end])
        elif char in "(),":
            end = pos + 1
            yield Token(char, None, pos, char)
        elif match := _NUMBER_RE.match(text, pos):
            end = match.end()
            yield Token("number", _number(text, pos, match.group()), pos, match.group())
        elif match := _OP_RE.match(text, pos):
            end = match.end()
            op = "!=" if match.group() == "<>" else match.group()
            yield Token("op", op, pos, match.group())
        elif match := IDENT_RE.match(text, pos):
            end = match.end()
            word = match.group()
            if word.lower() in KEYWORDS:
                yield Token("keyword", word.lower(), pos, word)
            elif end < size and text[end] == ".":
                key, end = _tag_key(text, end + 1)
                yield Token("field", f"{word}.{key}", pos, text[pos:end])
            else:
                yield Token("field", word, pos, word)
        else:  # the parser reports it with what it expected here
            yield Token("invalid", None, pos, char)
            return
        pos = end


def _tag_key(text: str, pos: int) -> tuple[str, int]:
    if text.startswith('"', pos):
        key, end = _quoted(text, pos, '"', "quoted key")
        if not key:
            raise FilterSyntaxError(pos, "empty key; expected a key", expected="a key")
        return key, end
    match = BARE_TAG_KEY_RE.match(text, pos)
    if match is None:
        what = "a key after '.' (letters, digits, _ . - / or \"quoted\")"
        if pos >= len(text):
            raise FilterSyntaxError(pos, f"expected {what}, found end of input", expected=what)
        raise _char_error(text, pos, what)
    return match.group(), match.end()


# --- parser ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.tok = next(self.tokens)
        self.terms = 0

    def advance(self) -> Token:
        tok = self.tok
        if tok.kind != "end":
            self.tok = next(self.tokens)
        return tok

    def is_keyword(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value == word

    def fail(self, expected: str) -> FilterSyntaxError:
        found = _describe(self.tok)
        return FilterSyntaxError(
            self.tok.pos, f"expected {expected}, found {found}", expected=expected
        )

    def enter(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise FilterSyntaxError(
                self.tok.pos, f"nested deeper than {MAX_DEPTH} levels (parentheses and 'not')"
            )
        return depth + 1

    def parse(self) -> Node:
        node = self.or_(0)
        if self.tok.kind != "end":
            raise self.fail("'and', 'or' or end of input")
        return node

    def or_(self, depth: int) -> Node:
        pos = self.tok.pos
        items = [self.and_(depth)]
        while self.is_keyword("or"):
            self.advance()
            items.append(self.and_(depth))
        return items[0] if len(items) == 1 else Or(tuple(items), pos)

    def and_(self, depth: int) -> Node:
        pos = self.tok.pos
        items = [self.not_(depth)]
        while self.is_keyword("and"):
            self.advance()
            items.append(self.not_(depth))
        return items[0] if len(items) == 1 else And(tuple(items), pos)

    def not_(self, depth: int) -> Node:
        pos = self.tok.pos
        if self.is_keyword("not"):
            inner = self.enter(depth)
            self.advance()
            return Not(self.not_(inner), pos)
        if self.tok.kind == "(":
            inner = self.enter(depth)
            self.advance()
            node = self.or_(inner)
            if self.tok.kind != ")":
                raise self.fail("'and', 'or' or ')'")
            self.advance()
            return node
        return self.term()

    def term(self) -> Term:
        if self.tok.kind != "field":
            raise self.fail(EXPECTED_TERM)
        if self.terms >= MAX_TERMS:
            raise FilterSyntaxError(self.tok.pos, f"more than {MAX_TERMS} conditions")
        self.terms += 1
        pos, name = self.tok.pos, str(self.advance().value)
        if self.tok.kind == "op":
            op = str(self.advance().value)
            return Compare(name, op, self.value(), pos)
        negated = self.is_keyword("not")
        if negated:
            self.advance()
            if not (self.is_keyword("in") or self.is_keyword("like")):
                raise self.fail("'in' or 'like' after 'not'")
        if self.is_keyword("in"):
            self.advance()
            return In(name, self.value_list(), negated, pos)
        if self.is_keyword("like"):
            self.advance()
            if self.tok.kind != "string":
                raise self.fail("a quoted pattern")
            like = Like(name, str(self.advance().value), negated, pos)
            check_like_pattern(like)  # refused here, before any database sees it
            return like
        if self.is_keyword("is"):
            self.advance()
            negated = self.is_keyword("not")
            if negated:
                self.advance()
            if not self.is_keyword("null"):
                raise self.fail("'null'" if negated else "'null' or 'not null'")
            self.advance()
            return IsNull(name, negated, pos)
        raise self.fail(EXPECTED_OPERATOR)

    def value(self) -> Value:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self.advance()
            return tok.value  # type: ignore[return-value]
        if tok.kind == "keyword" and tok.value in ("true", "false"):
            self.advance()
            return tok.value == "true"
        if tok.kind == "keyword" and tok.value == "null":
            raise self.fail("a value (test for null with 'is null' / 'is not null')")
        raise self.fail(EXPECTED_VALUE)

    def value_list(self) -> tuple[Value, ...]:
        if self.tok.kind != "(":
            raise self.fail("'(' starting a list of values")
        self.advance()
        values = [self.value()]
        while self.tok.kind == ",":
            self.advance()
            if len(values) >= MAX_IN_ITEMS:
                raise FilterSyntaxError(self.tok.pos, f"more than {MAX_IN_ITEMS} values in a list")
            values.append(self.value())
        if self.tok.kind != ")":
            raise self.fail("',' or ')'")
        self.advance()
        return tuple(values)


def parse_filter(text: str) -> Node:
    """Parse ``text`` into an AST, or raise :class:`FilterSyntaxError`."""
    if not isinstance(text, str):
        raise TypeError(f"a filter must be a str, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FilterSyntaxError(MAX_LENGTH, f"the filter is longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()
