"""PostgreSQL: the connections small analyst reads run on, kept apart from the store's pool.

A small read (one run's points, a short page, one metric's aggregates) is one statement of a
few hundred microseconds. Taking a connection from the store's SQLAlchemy pool and giving it
back cost about 100 µs of it, measured inside the call (benchmark (a)): SQLAlchemy's checkout
and checkin, their events, switching psycopg's ``autocommit`` on for the read and off again for
the store's transactions, and the rollback on return. A read needs none of that. So each store
keeps a few psycopg connections for small reads only:

* opened with the parameters of one of the store's own connections (same login, password,
  ``connect_timeout``, ``statement_timeout``), ``application_name`` ending in ``(reads)``;
* in autocommit, and read-only (:data:`READ_ONLY`, so ``default_transaction_read_only`` is on):
  a read cannot write, whatever its SQL;
* handed out last in, first out; at most ``pool_size`` kept idle and ``pool_size +
  max_overflow`` in use at once (a read beyond that waits up to :data:`WAIT_SECONDS`, as long as
  the store's pool waits, then fails with ``StoreUnavailableError``);
* checked as the store's own are (:mod:`etl_meta.db`): one back less than
  ``pool_ping_after_seconds`` ago that looks alive without I/O is handed out as is, any other is
  pinged first and replaced if the ping fails; one older than ``pool_recycle_seconds`` is
  replaced;
* closed with the store (see :mod:`._per_store`; never by a forked child).

Checkout and return measured inside the call: a bare SQLAlchemy ``QueuePool`` (as the ADBC
connections use) 42–47 µs without any check, ``psycopg_pool`` 31 µs (and a back-off sleep when
a pooled connection fails its check), this pool 25–35 µs with its check. Opening a connection
happens in the reading thread, so a server that cannot be reached fails the read at once with
the driver's reason, as the store's pool does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from etl_meta.analytics._per_store import PerStore
from etl_meta.db import conninfo_of, looks_alive
from etl_meta.errors import StoreUnavailableError
from etl_meta.store import MetadataStore

__all__ = ["PooledRead", "ReadPool", "read_pool"]

#: How long a read waits for a connection when the pool is at its limit (the store's pool,
#: SQLAlchemy's default ``pool_timeout``, waits as long).
WAIT_SECONDS = 30.0
#: Run once on a new connection: every later statement runs in a read-only transaction. A
#: statement, not a startup ``options`` parameter, which a connection pooler in front of the
#: server (PgBouncer) may refuse.
READ_ONLY = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"


@dataclass(eq=False)
class PooledRead:
    """One pooled connection and what lives as long as it does."""

    driver: Any  # a psycopg connection in autocommit
    #: Kept with the connection: its cursors (see ``ReadConnection.prepared_rows``).
    info: dict[Any, Any] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)
    #: When the connection was last known alive: opened, or back from a read.
    alive_at: float = field(default_factory=time.monotonic)


class ReadPool:
    """The pool described in the module's doc."""

    def __init__(
        self,
        conninfo: str,
        *,
        keep: int,
        most: int,
        recycle_seconds: float,
        ping_after_seconds: float,
    ) -> None:
        self._conninfo = conninfo
        self._keep = keep
        self._most = most
        self._recycle_seconds = recycle_seconds
        self._ping_after_seconds = ping_after_seconds
        self._idle: list[PooledRead] = []
        self._in_use = 0
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)  # notified when a connection comes back
        self._closed = False

    def checkout(self) -> PooledRead:
        """A live connection: an idle one, or a new one. Driver errors propagate."""
        with self._free:
            if self._in_use >= self._most and not self._free.wait_for(
                lambda: self._in_use < self._most, timeout=WAIT_SECONDS
            ):
                raise StoreUnavailableError(
                    f"no connection for a read within {WAIT_SECONDS:g} s: "
                    f"{self._most} reads are running"
                )
            self._in_use += 1
            entry = self._idle.pop() if self._idle else None
        try:
            while entry is not None and not self._usable(entry):
                _close(entry)
                with self._lock:
                    entry = self._idle.pop() if self._idle else None
            if entry is None:
                entry = PooledRead(_connect(self._conninfo))
        except BaseException:
            self._release()
            raise
        return entry

    def checkin(self, entry: PooledRead) -> None:
        """Give ``entry`` back: kept for the next read if it is idle and sound, else closed."""
        now = time.monotonic()
        driver = entry.driver
        sound = (
            not driver.closed
            and driver.pgconn.transaction_status == TransactionStatus.IDLE
            and now - entry.opened_at < self._recycle_seconds
        )
        with self._free:
            kept = sound and not self._closed and len(self._idle) < self._keep
            if kept:
                entry.alive_at = now
                self._idle.append(entry)
            self._in_use -= 1
            self._free.notify()
        if not kept:
            _close(entry)

    def _release(self) -> None:
        with self._free:
            self._in_use -= 1
            self._free.notify()

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for entry in idle:
            _close(entry)

    def _usable(self, entry: PooledRead) -> bool:
        now = time.monotonic()
        if now - entry.opened_at >= self._recycle_seconds:
            return False
        if now - entry.alive_at < self._ping_after_seconds and looks_alive(entry.driver):
            return True
        try:
            entry.driver.execute("SELECT 1")
        except Exception:  # the server ended it, or the socket is gone: replace it
            return False
        return True


def _connect(conninfo: str) -> Any:
    driver = psycopg.connect(conninfo, autocommit=True)
    try:
        driver.execute(READ_ONLY)
    except BaseException:
        driver.close()
        raise
    return driver


def _close(entry: PooledRead) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing to tell the server
        entry.driver.close()


def read_pool(store: MetadataStore) -> ReadPool:
    """``store``'s pool of connections for small reads (PostgreSQL), made on first use from
    the parameters of one of the store's connections."""
    return _POOLS.get(store, _new_pool)


def _new_pool(store: MetadataStore) -> ReadPool:
    pooled = store.engine.raw_connection()
    try:
        conninfo = conninfo_of(pooled.driver_connection, suffix="reads")
    finally:
        pooled.close()
    settings = store.settings
    return ReadPool(
        conninfo,
        keep=settings.pool_size,
        most=settings.pool_size + settings.max_overflow,
        recycle_seconds=settings.pool_recycle_seconds,
        ping_after_seconds=settings.pool_ping_after_seconds,
    )


_POOLS: PerStore[ReadPool] = PerStore(ReadPool.dispose)
