"""How long the store's statements take: per-process counters and a slow-query log.

Every engine :func:`etl_meta.db.create_engine` builds is timed here. :func:`query_stats` returns
this process's counters (statements, total and slowest time, by kind: ``SELECT``, ``INSERT``, …);
``etl-meta --timings <command>`` prints them when the command ends. With
``ETL_META_SLOW_QUERY_MS`` set, a statement that takes at least that long is logged on the
``etl_meta.slow_query`` logger at WARNING: its duration, the statement as written (placeholders,
never parameter values, which may hold secrets) and the etl-meta function that ran it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

slow_log = logging.getLogger("etl_meta.slow_query")

#: ``conn.info`` key: start times of the statements running on a connection (a stack: a
#: statement's events may nest when a listener runs one of its own).
_STARTED_KEY = "etl_meta_query_started"
#: Longest statement text a slow-query line shows.
MAX_STATEMENT_CHARS = 500
_PACKAGE = Path(__file__).resolve().parent
_OWN_FILES = {Path(__file__).resolve(), _PACKAGE / "db.py"}


@dataclass
class KindStats:
    """Counters of one kind of statement (the first SQL keyword)."""

    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    slow: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters, times rounded to microseconds."""
        return {
            "count": self.count,
            "total_ms": round(self.total_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "slow": self.slow,
        }


@dataclass
class _Counters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    kinds: dict[str, KindStats] = field(default_factory=dict)

    def add(self, kind: str, elapsed_ms: float, *, slow: bool) -> None:
        with self.lock:
            stats = self.kinds.setdefault(kind, KindStats())
            stats.count += 1
            stats.total_ms += elapsed_ms
            stats.max_ms = max(stats.max_ms, elapsed_ms)
            stats.slow += slow


_counters = _Counters()


def query_stats() -> dict[str, dict[str, Any]]:
    """This process's statement counters by kind, plus ``"all"``: count, total, max, slow."""
    with _counters.lock:
        kinds = {kind: KindStats(**vars(stats)) for kind, stats in _counters.kinds.items()}
    total = KindStats()
    for stats in kinds.values():
        total.count += stats.count
        total.total_ms += stats.total_ms
        total.max_ms = max(total.max_ms, stats.max_ms)
        total.slow += stats.slow
    return {kind: stats.to_dict() for kind, stats in sorted(kinds.items())} | {
        "all": total.to_dict()
    }


def reset_query_stats() -> None:
    """Start counting from zero (for a benchmark or a long-lived process's report)."""
    with _counters.lock:
        _counters.kinds.clear()


def format_query_stats(stats: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per kind: ``SELECT  12 statements  34.5 ms total  9.1 ms max  0 slow``."""
    lines = []
    for kind, row in stats.items():
        lines.append(
            f"{kind:<8} {row['count']:>6} statements {row['total_ms']:>10.1f} ms total "
            f"{row['max_ms']:>8.1f} ms max {row['slow']:>4} slow"
        )
    return "\n".join(lines)


def _kind(statement: str) -> str:
    words = statement.lstrip(" (\n\t").split(None, 1)
    return words[0].upper() if words else "?"


def _one_line(statement: str) -> str:
    text = " ".join(statement.split())
    if len(text) > MAX_STATEMENT_CHARS:
        text = text[: MAX_STATEMENT_CHARS - 1] + "…"
    return text


def _caller() -> str:
    """The innermost etl-meta frame outside this module and the engine factory, else the
    innermost frame outside SQLAlchemy: who asked for the statement."""
    outside_sqlalchemy = None
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename).resolve()
        if path in _OWN_FILES:
            continue
        if _PACKAGE in path.parents:
            return f"{path.relative_to(_PACKAGE.parent)}:{frame.lineno} in {frame.name}"
        if outside_sqlalchemy is None and "sqlalchemy" not in path.parts:
            outside_sqlalchemy = f"{frame.filename}:{frame.lineno} in {frame.name}"
    return outside_sqlalchemy or "?"


def instrument(engine: Engine, *, slow_query_ms: float | None) -> None:
    """Time every statement ``engine`` runs; log those of at least ``slow_query_ms``."""

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _started(conn: sa.Connection, *_args: Any) -> None:
        conn.info.setdefault(_STARTED_KEY, []).append(time.perf_counter())

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _ended(conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        _finish(conn, statement, slow_query_ms)

    @sa.event.listens_for(engine, "handle_error")
    def _failed(context: sa.engine.ExceptionContext) -> None:
        # A failed statement still took time (a lock wait, a timeout): count it, so timings
        # explain a slow command that ended in an error too.
        if context.connection is not None and context.statement is not None:
            _finish(context.connection, context.statement, slow_query_ms)


def _finish(conn: sa.Connection, statement: str, slow_query_ms: float | None) -> None:
    started = conn.info.get(_STARTED_KEY)
    if not started:
        return
    elapsed_ms = (time.perf_counter() - started.pop()) * 1000
    slow = slow_query_ms is not None and elapsed_ms >= slow_query_ms
    _counters.add(_kind(statement), elapsed_ms, slow=slow)
    if slow:
        slow_log.warning(
            "slow query %.1f ms (threshold %g ms) from %s: %s",
            elapsed_ms,
            slow_query_ms,
            _caller(),
            _one_line(statement),
        )
