"""The connection an analyst read runs on, and what its driver errors become.

Inside ``store.transaction()`` a read uses that transaction's connection, so it sees the
transaction's own writes. A small read on PostgreSQL takes one of the store's read connections
(:mod:`._read_pool`: autocommit, read-only). Otherwise a read checks a connection out of the
store's pool as a plain DBAPI connection and runs its statement on its own: autocommit on
PostgreSQL (SQLite's driver is in autocommit mode here and sends no ``BEGIN``). A single
statement reads one consistent snapshot either way, and a ``BEGIN``/``COMMIT`` round trip, or
the ORM session around them, costs as much as a small query itself.

A raw pooled connection, not an ``sa.Connection``: a 50-row read takes about 0.4 ms, and the
``Connection`` object with an ``AUTOCOMMIT`` isolation option cost another 0.09 ms (engine
events, isolation-level bookkeeping) where setting psycopg's ``autocommit`` and back costs
0.015 ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from etl_meta.analytics._read_pool import read_pool
from etl_meta.errors import EtlMetaError
from etl_meta.store import MetadataStore
from etl_meta.store._errors import translate_db_error


@dataclass(frozen=True)
class ReadConnection:
    """A DBAPI connection (psycopg or sqlite3) for one read, and its dialect."""

    dialect: Dialect
    driver: Any
    #: Inside ``store.transaction()``: the read must see that transaction's writes.
    in_transaction: bool
    #: What lives as long as the DBAPI connection (its kept cursors): the SQLAlchemy pool
    #: entry's ``info`` (cleared when the entry reconnects) or the read connection's own.
    info: dict[Any, Any]

    def prepared_rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """psycopg: all rows of a server-side prepared statement (psycopg prepares it once
        per connection), read by this connection's :func:`binary_cursor`.

        The cursor is made once per DBAPI connection and kept in :attr:`info`: making a cursor
        and registering its loader cost as much per call as building a 50-row frame's columns
        (benchmark (a): 0.16 × the hand-written query). Only the thread holding the connection
        uses it. A cursor keeps its last result until its next statement, so one that read
        more than :data:`_KEPT_ROWS` rows, or one row of more than :data:`_KEPT_BYTES` (one
        run's points, packed), is closed rather than kept.
        """
        kept = self.info.get(_CURSOR_KEY)
        if kept is None or kept.closed or kept.connection is not self.driver:
            kept = self.info[_CURSOR_KEY] = binary_cursor(self.driver)
        rows = kept.execute(sql, params, prepare=True).fetchall()
        if len(rows) > _KEPT_ROWS or (len(rows) == 1 and _row_bytes(rows[0]) > _KEPT_BYTES):
            del self.info[_CURSOR_KEY]
            kept.close()
        return rows


#: :attr:`ReadConnection.info` key of the connection's :func:`binary_cursor`.
_CURSOR_KEY = "etl_meta_binary_cursor"
#: A kept cursor holds its last result: at most this many rows.
_KEPT_ROWS = 1_000
#: … and a one-row result of at most this many bytes.
_KEPT_BYTES = 1 << 20


def _row_bytes(row: tuple[Any, ...]) -> int:
    """About how much memory a row's values hold: bytes, text and lists by their length,
    anything else as 8 bytes."""
    return sum(len(value) if hasattr(value, "__len__") else 8 for value in row)


def read_connection(
    store: MetadataStore, *, small: bool = False
) -> AbstractContextManager[ReadConnection]:
    """A connection for one read; driver errors raised in the block become typed errors.

    ``small``: the read is one short statement; on PostgreSQL it runs on the store's read
    connections (:mod:`._read_pool`), not its pool.
    """
    if store.in_transaction():
        return _in_transaction(store)
    return _Read(store, small)


@contextmanager
def _in_transaction(store: MetadataStore) -> Iterator[ReadConnection]:
    with store.transaction(readonly=True) as session:
        connection = session.connection()
        pooled = connection.connection
        with _translated(connection.dialect):
            yield ReadConnection(connection.dialect, pooled.driver_connection, True, pooled.info)


class _Read:
    """:func:`read_connection` outside a transaction: a read connection (small reads on
    PostgreSQL) or a raw connection of the store's pool, in autocommit.

    A class, not a generator: ``@contextmanager`` with the two nested ones that typed the
    errors cost 5 µs of a 50-row read, as much as the checkout itself.
    """

    __slots__ = ("_dialect", "_entry", "_pool", "_pooled", "_small", "_store")

    def __init__(self, store: MetadataStore, small: bool) -> None:
        self._store, self._small = store, small

    def __enter__(self) -> ReadConnection:
        engine = self._store.engine
        dialect = self._dialect = engine.dialect
        postgresql = dialect.name == "postgresql"
        self._pool = self._pooled = None
        try:
            if self._small and postgresql:
                pool = read_pool(self._store)
                entry = self._entry = pool.checkout()
                self._pool = pool
                return ReadConnection(dialect, entry.driver, False, entry.info)
            pooled = engine.raw_connection()
        except Exception as exc:
            _raise_typed(dialect, exc)
        self._pooled = pooled
        driver = pooled.driver_connection
        if postgresql:  # sqlite3 is in autocommit mode here already (see etl_meta.db)
            try:
                driver.autocommit = True
            except Exception as exc:
                self._give_back()
                _raise_typed(dialect, exc)
        return ReadConnection(dialect, driver, False, pooled.info)

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        try:
            if isinstance(error, Exception):
                typed = _typed(self._dialect, error)
                if typed is not None:
                    raise typed from typed.__cause__
        finally:
            self._give_back()

    def _give_back(self) -> None:
        if self._pool is not None:
            self._pool.checkin(self._entry)
            return
        pooled = self._pooled
        if pooled is None:
            return
        try:
            if self._dialect.name == "postgresql":
                pooled.driver_connection.autocommit = False  # the pool's users expect this
        except Exception:  # a broken connection: the pool must not hand it out again
            pooled.invalidate()
        pooled.close()


def binary_cursor(driver: Any) -> Any:
    """A psycopg cursor for small reads: binary results, ``timestamptz`` read as naive UTC.

    Both timestamp types are microseconds since 2000-01-01 on the wire, so the naive loader
    gives the UTC wall clock as a naive ``datetime`` in C, whatever the session's time zone,
    instead of an aware one numpy cannot take and pyarrow converts value by value. On this
    cursor only: the store's own connection keeps its loaders.
    """
    from psycopg.types.datetime import TimestampBinaryLoader

    cursor = driver.cursor(binary=True)
    cursor.adapters.register_loader("timestamptz", TimestampBinaryLoader)
    return cursor


@contextmanager
def _translated(dialect: Dialect) -> Iterator[None]:
    """Driver and SQLAlchemy errors as etl-meta's typed errors (as ``store.transaction`` does)."""
    try:
        yield
    except Exception as exc:
        _raise_typed(dialect, exc)


def _raise_typed(dialect: Dialect, exc: Exception) -> NoReturn:
    """Raise ``exc`` as its typed error (:func:`_typed`), or as it is."""
    typed = _typed(dialect, exc)
    if typed is None:
        raise exc
    raise typed from typed.__cause__


def _typed(dialect: Dialect, exc: Exception) -> EtlMetaError | None:
    """The typed error of a driver or SQLAlchemy error; ``None`` for any other (etl-meta's own
    errors included)."""
    if isinstance(exc, EtlMetaError):
        return None
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return translate_db_error(exc)
    if isinstance(exc, dialect.loaded_dbapi.Error):
        wrapped = sa.exc.DBAPIError.instance(
            None, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
        )
        return translate_db_error(wrapped)
    return None
