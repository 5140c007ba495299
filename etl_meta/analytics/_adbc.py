"""Large results as Arrow tables, through Apache Arrow's ADBC drivers.

PostgreSQL (every large result outside a transaction):
``COPY (query) TO STDOUT (FORMAT CSV)`` makes the server format every float and timestamp as
text and the client parse it back: two thirds of a million-row read here. Binary ``COPY``
sends values as they are stored, and the ADBC driver (Apache Arrow's libpq-based driver)
decodes it into Arrow in C++ while the server is still sending, without the GIL. psycopg has no
Arrow decoder for binary ``COPY``; decoding it row by row in Python is slower than CSV.

The driver opens its own libpq connections, with exactly the parameters libpq used for one of
the store's connections (host, login, password, ``connect_timeout``, ``statement_timeout`` …),
so it reads with the same privileges and limits; its ``application_name`` ends in ``(adbc)``.
They are kept in a
small SQLAlchemy pool per store, pinged when reused after an idle spell, and closed when the
store's engine is disposed or the store is garbage-collected.

Parameters are bound client-side by psycopg (``ClientCursor.mogrify``: the same quoting
psycopg applies to ``COPY``'s parameters), never formatted into the SQL by us: given
parameters, ADBC runs a prepared statement instead of ``COPY``, about 30 % slower here.

SQLite (whole metric frames, see :mod:`._narrow`): the ADBC SQLite driver reads the store's
file into Arrow in C, about 1.7× faster than ``sqlite3`` rows converted to Arrow. Its pooled
connections are read-only (``PRAGMA query_only``) and wait on locks as long as the store's own
(``busy_timeout``); parameters are bound by the driver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import pool as sa_pool

from etl_meta.analytics._per_store import PerStore
from etl_meta.db import conninfo_of
from etl_meta.errors import EtlMetaError
from etl_meta.store import MetadataStore
from etl_meta.store._errors import translate_driver_error

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ArrowPool", "ArrowSession", "arrow_session", "bind", "pool_of"]

#: A pooled connection idle for longer than this is pinged before it is used again (a large
#: read takes tens of milliseconds at least; the ping is one round trip).
PING_AFTER_SECONDS = 1.0
_CHECKED_IN = "etl_meta_checked_in"


@dataclass(frozen=True)
class ArrowPool:
    """A store's pool of ADBC connections and the backend they connect to."""

    pool: sa_pool.QueuePool
    dialect: str  # "postgresql" or "sqlite"

    def dispose(self) -> None:
        """Close the pool's connections (:data:`POOLS` calls it in the process that opened
        them only: a forked child closing them would end its parent's sessions)."""
        self.pool.dispose()


class ArrowSession:
    """One ADBC connection, inside a read-only snapshot when asked for one."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def table(self, sql: str, params: Any = None) -> pa.Table:
        """The rows of ``sql``. On PostgreSQL its parameters are already bound (see
        :func:`bind`); on SQLite ``params`` are bound by the driver (``?`` placeholders)."""
        with self._connection.cursor() as cursor:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            return cursor.fetch_arrow_table()

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing (``BEGIN``, ``COMMIT``, ``SET``)."""
        with self._connection.cursor() as cursor:
            cursor.execute(sql)


def bind(driver: Any, sql: str, params: Any) -> str:
    """``sql`` with ``params`` bound client-side by psycopg, on the store's connection
    ``driver`` (its adapters and encoding)."""
    import psycopg

    if not params:
        return sql
    return psycopg.ClientCursor(driver).mogrify(sql, params)


def pool_of(store: MetadataStore, driver: Any) -> ArrowPool:
    """``store``'s pool of ADBC connections, made on first use: on PostgreSQL from the
    connection parameters of ``driver`` (a psycopg connection of the store), on SQLite for the
    store's file. One per store and process (see :mod:`._per_store`)."""

    def make(owner: MetadataStore) -> ArrowPool:
        dialect = owner.engine.dialect.name
        if dialect == "postgresql":
            return ArrowPool(
                _new_pool(owner, _postgresql_creator(conninfo_of(driver, suffix="adbc"))), dialect
            )
        return ArrowPool(_new_pool(owner, _sqlite_creator(owner)), dialect)

    return POOLS.get(store, make)


@contextmanager
def arrow_session(pool: ArrowPool, *, snapshot: bool = False) -> Iterator[ArrowSession]:
    """An ADBC connection from ``pool`` (see :func:`pool_of`) for large reads.

    ``snapshot=True`` runs the block in one read-only transaction (PostgreSQL: ``REPEATABLE
    READ READ ONLY``; SQLite: a deferred ``BEGIN``, one WAL snapshot), so several statements see
    the same data. Driver errors become etl-meta's typed errors (see
    :mod:`etl_meta.store._errors`).
    """
    begin = (
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        if pool.dialect == "postgresql"
        else "BEGIN"
    )
    try:
        fairy = pool.pool.connect()
    except _adbc_errors() as exc:  # the connection could not be opened
        translated = _translated(exc)
        raise translated from translated.__cause__
    except sa.exc.SQLAlchemyError:  # a replacement for a stale connection failed its ping too
        translated = translate_driver_error(
            "no live connection for a large read", None, connection_failed=True
        )
        raise translated from translated.__cause__
    session = ArrowSession(fairy.dbapi_connection)
    try:
        if snapshot:
            session.execute(begin)
        yield session
        if snapshot:
            session.execute("COMMIT")
    except _adbc_errors() as exc:
        _discard(fairy)
        translated = _translated(exc)
        # Chained to the sanitized DriverError (SQLSTATE, primary message), not to the ADBC
        # error, whose message quotes the whole statement.
        raise translated from translated.__cause__
    except BaseException:
        if snapshot and not _rolled_back(session):
            _discard(fairy)
        raise
    finally:
        if fairy.is_valid:
            fairy.close()


def _rolled_back(session: ArrowSession) -> bool:
    try:
        session.execute("ROLLBACK")
    except Exception:
        return False
    return True


def _discard(fairy: Any) -> None:
    # After a driver error the connection may be mid-COPY or in a failed transaction.
    fairy.invalidate()
    fairy.close()


def _adbc_errors() -> type[Exception]:
    import adbc_driver_manager

    return adbc_driver_manager.Error


def _translated(error: BaseException) -> EtlMetaError:
    """An ADBC error as a typed error: its primary message and SQLSTATE only (the driver's
    own message quotes the whole statement, literals included)."""
    details = dict(getattr(error, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    message = primary.decode(errors="replace") if primary else str(error).split("\n", 1)[0]
    sqlstate = getattr(error, "sqlstate", None) or None
    import adbc_driver_manager

    failed = sqlstate is None and isinstance(error, adbc_driver_manager.OperationalError)
    return translate_driver_error(message, sqlstate, connection_failed=failed)


#: Each store's ADBC pool (made by :func:`pool_of`).
POOLS: PerStore[ArrowPool] = PerStore(ArrowPool.dispose)


def _postgresql_creator(conninfo: str) -> Any:
    def create() -> Any:
        import adbc_driver_postgresql.dbapi as adbc

        return adbc.connect(conninfo, autocommit=True)

    return create


def _sqlite_creator(store: MetadataStore) -> Any:
    path = store.engine.url.database
    busy_timeout = int(store.settings.sqlite_busy_timeout_ms)

    def create() -> Any:
        import adbc_driver_sqlite.dbapi as adbc

        connection = adbc.connect(path, autocommit=True)
        with connection.cursor() as cursor:
            # Wait for a checkpoint's lock as the store's own connections do; and never write.
            for pragma in (f"PRAGMA busy_timeout={busy_timeout}", "PRAGMA query_only=ON"):
                cursor.execute(pragma)
                cursor.fetch_arrow_table()
        return connection

    return create


def _new_pool(store: MetadataStore, create: Any) -> sa_pool.QueuePool:
    settings = store.settings
    pool = sa_pool.QueuePool(
        create,
        pool_size=1,
        max_overflow=max(settings.max_overflow, 1),
        recycle=settings.pool_recycle_seconds,
        reset_on_return=None,  # autocommit; a block's own transaction is ended by the block
    )
    if store.engine.dialect.name == "postgresql":  # a SQLite file has no server to lose
        sa.event.listen(pool, "checkin", _on_checkin)
        sa.event.listen(pool, "checkout", _on_checkout)
    return pool


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_CHECKED_IN] = time.monotonic()


def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat idle (the server may have closed it since): a failed ping
    makes the pool replace it, as the store's own pool does (see :mod:`etl_meta.db`)."""
    checked_in = record.info.get(_CHECKED_IN)
    if checked_in is None or time.monotonic() - checked_in < PING_AFTER_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetch_arrow_table()
    except _adbc_errors() as exc:
        raise sa.exc.DisconnectionError("stale ADBC connection") from exc
