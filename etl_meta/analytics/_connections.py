"""The connection an analyst read runs on, and what its driver errors become.

Inside ``store.transaction()`` a read uses that transaction's connection, so it sees the
transaction's own writes. Otherwise it checks a connection out of the store's own pool and runs
its one statement in autocommit (SQLite's driver is in autocommit mode in the store already): a
single statement reads one consistent snapshot, and a ``BEGIN``/``ROLLBACK`` pair around it
would cost as much as a small query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from etl_meta.errors import EtlMetaError, translate_db_error
from etl_meta.store import MetadataStore


@dataclass(frozen=True)
class ReadConnection:
    """A DBAPI connection (psycopg or sqlite3) for one read, and its dialect."""

    dialect: Dialect
    driver: Any
    #: Inside ``store.transaction()``: the read must see that transaction's writes.
    in_transaction: bool

    def rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """All rows of ``sql``. psycopg prepares a statement it runs often on the server."""
        cursor = self.driver.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            cursor.close()


@contextmanager
def read_connection(store: MetadataStore) -> Iterator[ReadConnection]:
    """A connection for one read; driver errors raised in the block become typed errors."""
    if store.in_transaction():
        with store.transaction(readonly=True) as session:
            connection = session.connection()
            own = connection.connection.driver_connection
            with translated(connection.dialect):
                yield ReadConnection(connection.dialect, own, True)
        return
    dialect = store.engine.dialect
    with translated(dialect):
        pooled = store.engine.raw_connection()
    postgresql = dialect.name == "postgresql"
    driver: Any = pooled.driver_connection
    try:
        with translated(dialect):
            if postgresql:
                driver.autocommit = True
            yield ReadConnection(dialect, driver, False)
    finally:
        try:
            if postgresql:
                driver.autocommit = False  # what the pool's users expect
        except Exception:  # a broken connection: the pool must not hand it out again
            pooled.invalidate()
        pooled.close()


@contextmanager
def translated(dialect: Dialect) -> Iterator[None]:
    """Driver and SQLAlchemy errors as etl-meta's typed errors (as ``store.transaction`` does)."""
    try:
        yield
    except Exception as exc:
        _raise_typed(dialect, exc)


def _raise_typed(dialect: Dialect, exc: Exception) -> NoReturn:
    if isinstance(exc, EtlMetaError):
        raise exc
    if isinstance(exc, sa.exc.SQLAlchemyError):
        typed = translate_db_error(exc)
    elif isinstance(exc, dialect.loaded_dbapi.Error):
        wrapped = sa.exc.DBAPIError.instance(
            None, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
        )
        typed = translate_db_error(wrapped)
    else:
        raise exc
    raise typed from typed.__cause__
