"""Statements built and compiled once per query shape, then bound per call.

Building a SQLAlchemy ``Select`` with its joins and filters, and compiling it, takes longer than
running a small query. An analyst query's *shape* —
which filters are given, how many names a list holds, which aggregates — decides its SQL; the
values (a run id, a metric name, a time) are bound parameters. So a statement is built with
named, unbound parameters once per shape, compiled once per shape and dialect, and each call only
binds its values: the SQL that runs is exactly the statement the builder returns, bound.

Values baked into a shape (the literals of a ``filter=`` expression, tag keys) are part of the
key, so a cached statement never carries another call's values.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: Shapes kept; one entry is a statement and its compiled SQL (a few kB).
CACHE_SIZE = 256


def param(name: str, type_: Any = None) -> sa.BindParameter[Any]:
    """A named parameter bound per call (``required=False``: shapes are compiled unbound)."""
    return sa.bindparam(name, type_=type_, required=False)


@dataclass(frozen=True)
class Compiled:
    """A shape's SQL in the driver's parameter style, and how to bind a call's values."""

    sql: str
    #: Parameter names in order (SQLite's ``?``), or ``None`` for named (psycopg's ``%(name)s``).
    positions: tuple[str, ...] | None
    #: Processed values of parameters baked into the shape (a filter's literals).
    fixed: Mapping[str, Any]
    #: Bind processors of the per-call parameters that have one (``UTCDateTime`` → stored form).
    processors: Mapping[str, Callable[[Any], Any]]

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        """The driver's parameters for ``values`` (name → Python value)."""
        params = dict(self.fixed)
        for name, value in values.items():
            process = self.processors.get(name)
            params[name] = process(value) if process is not None else value
        if self.positions is None:
            return params
        return tuple(params[name] for name in self.positions)


@dataclass(frozen=True)
class Shaped:
    """One call of an analyst query: its shape, this call's values, and its expected size."""

    key: tuple[Hashable, ...]
    build: Callable[[], sa.Select]  # the statement of this shape, parameters unbound
    values: Mapping[str, Any]
    #: The shape bounds the result to a few thousand rows (one run, a short page, a targeted
    #: aggregate): its rows are read by the driver, not through Arrow (see :mod:`.fetch`).
    small: bool
    #: Sort the fetched rows by this column (ascending): the statement has no ORDER BY.
    sort_by: str | None = None
    #: A whole metric frame's points with ids instead of names, for a large PostgreSQL read
    #: (see ``._arrow.read_points_named``).
    ids: Shaped | None = None

    def statement(self) -> sa.Select:
        """The statement with this call's values bound (for ``EXPLAIN`` or further building)."""
        return _statements.get(self.key, self.build).params(dict(self.values))

    def compiled(self, dialect: Dialect) -> Compiled:
        """This shape's SQL for ``dialect``, compiled on first use."""
        key = (dialect.name, dialect.driver, dialect.server_version_info, *self.key)
        return _compiled.get(key, lambda: compile_statement(self._unbound(), dialect))

    def _unbound(self) -> sa.Select:
        return _statements.get(self.key, self.build)


def compile_statement(statement: sa.Select, dialect: Dialect) -> Compiled:
    """``statement`` compiled once; its unbound parameters are left for :meth:`Compiled.bind`."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    processors: dict[str, Callable[[Any], Any]] = {}
    free: set[str] = set()
    expanding: dict[str, Any] = {}
    for bind, name in compiled.bind_names.items():
        if bind.expanding:
            expanding[name] = bind
        if bind.value is None and not bind.callable and not bind.expanding:
            free.add(name)
        bound = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bound is not None:
            processors[name] = bound
    fixed: dict[str, Any] = {}
    for name, value in compiled.params.items():
        if name in free:
            continue
        # An expanding IN (…) of a filter is rendered as name_1, name_2, …: the processor is
        # the expanding parameter's.
        base, _, index = name.rpartition("_")
        process = processors.get(name)
        if process is None and index.isdigit() and base in expanding:
            process = processors.get(base)
        fixed[name] = process(value) if process is not None and value is not None else value
    positions = compiled.positiontup
    return Compiled(
        sql=compiled.string,
        positions=tuple(positions) if positions is not None else None,
        fixed=fixed,
        processors={name: p for name, p in processors.items() if name in free},
    )


class _LRU:
    """A small thread-safe least-recently-used map (analyst queries may run in threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, create: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = create()  # outside the lock: building may take a millisecond
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_statements = _LRU(CACHE_SIZE)
_compiled = _LRU(CACHE_SIZE)


def clear_caches() -> None:
    """Forget every cached statement (tests use it to compare cold and warm calls)."""
    _statements.clear()
    _compiled.clear()
