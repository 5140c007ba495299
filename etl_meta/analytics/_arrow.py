"""Large results as a stream of Arrow tables, with the Arrow type of each column kind.

PostgreSQL, outside a transaction: Apache Arrow's ADBC driver reads the query through binary
``COPY`` and decodes it into Arrow in C++ while the server is still sending, without the GIL;
psycopg has no Arrow decoder, and its rows cost a Python object per value. The driver opens its
own libpq connection with exactly the parameters libpq used for the store's connection (host,
login, password, ``connect_timeout``, ``statement_timeout`` …), so it reads with the same
privileges and limits; its ``application_name`` ends in ``(adbc)``. It is opened per read and
closed after: a connection costs milliseconds, a large read far more, and nothing is left open
to go stale or be shared with a forked child. Parameters are bound client-side by psycopg
(``ClientCursor.mogrify``, the quoting psycopg applies to ``COPY``'s parameters): given
parameters, ADBC would run a prepared statement instead of ``COPY``.

SQLite, and PostgreSQL inside ``store.transaction()`` (whose writes another connection cannot
see): the driver's rows, fetched a batch at a time, each batch one Arrow table. Not the ADBC
SQLite driver: it links its own copy of SQLite, and two copies of SQLite in one process break
each other's POSIX locks on the same file (sqlite.org, "How To Corrupt An SQLite Database",
2.2.1) — reads through it missed committed rows and left the store's connections with
``disk I/O error``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from etl_meta.analytics._connections import ReadConnection
from etl_meta.analytics._frames import Kind
from etl_meta.db import conninfo_of
from etl_meta.errors import EtlMetaError, translate_driver_error
from etl_meta.transpose import columns_of

if TYPE_CHECKING:
    import pyarrow as pa

#: Rows per Arrow table when a large result is read as driver rows.
BATCH_ROWS = 65_536


def arrow_type(kind: Kind) -> pa.DataType:
    """The Arrow type of a column kind (categories are read as strings)."""
    import pyarrow as pa

    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "text": pa.string(),
        "category": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bool": pa.bool_(),
    }[kind]


def empty_table(columns: Mapping[str, Kind]) -> pa.Table:
    """No rows, with the Arrow type of each column."""
    import pyarrow as pa

    return pa.table({name: pa.array([], type=arrow_type(kind)) for name, kind in columns.items()})


@contextmanager
def arrow_stream(
    connection: ReadConnection, sql: str, params: Any, columns: Mapping[str, Kind]
) -> Iterator[Iterator[pa.Table]]:
    """The rows of ``sql`` as Arrow tables of ``columns``, read while the block iterates."""
    if connection.dialect.name == "postgresql" and not connection.in_transaction:
        with _adbc_reader(connection.driver, sql, params) as reader:
            yield (_conform(batch, columns) for batch in reader)
    else:
        yield _row_batches(connection.driver, sql, params, columns)


def _row_batches(
    driver: Any, sql: str, params: Any, columns: Mapping[str, Kind]
) -> Iterator[pa.Table]:
    cursor = driver.cursor()
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield rows_table(rows, columns)
    finally:
        cursor.close()


def rows_table(rows: Sequence[Sequence[Any]], columns: Mapping[str, Kind]) -> pa.Table:
    """Driver rows as an Arrow table: timestamps as aware ``datetime`` s (psycopg) or the
    stored ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text (SQLite), booleans as ``bool`` or 0/1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for values, kind in zip(columns_of(rows, len(columns)), columns.values(), strict=True):
        if kind == "timestamp" and isinstance(next(filter(None, values), None), str):
            text = pa.array(values, type=pa.string())
            arrays.append(pc.assume_timezone(pc.cast(text, pa.timestamp("us")), "UTC"))
        elif kind == "bool":
            arrays.append(pa.array(np.array(values, dtype=bool)))
        else:
            arrays.append(pa.array(values, type=arrow_type(kind)))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _conform(batch: pa.RecordBatch, columns: Mapping[str, Kind]) -> pa.Table:
    """An ADBC batch with the names of ``columns`` and the Arrow type of each kind: ADBC gives
    ``int4`` as int32, ``numeric`` as an opaque extension over its text, and a ``timestamp``
    without time zone as naive (our statements' naive timestamps are UTC)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for column, kind in zip(batch.columns, columns.values(), strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        if kind == "timestamp" and column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        target = arrow_type(kind)
        arrays.append(column if column.type == target else column.cast(target))
    return pa.Table.from_arrays(arrays, names=list(columns))


def sorted_by(table: pa.Table, column: str) -> pa.Table:
    """``table`` in ascending order of ``column`` (unique ids): untouched when it already is,
    which is how an unordered scan of ``metric`` usually returns it."""
    import pyarrow.compute as pc

    keys = table.column(column).to_numpy()
    if len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return table
    return table.take(pc.sort_indices(table.column(column)))


@contextmanager
def _adbc_reader(driver: Any, sql: str, params: Any) -> Iterator[pa.RecordBatchReader]:
    """PostgreSQL: ``sql`` read by the ADBC driver on a connection of its own (see above).

    Driver errors, at the start or while the block reads, become etl-meta's typed errors with
    the SQLSTATE and the server's primary message only: the driver's own quotes the statement.
    """
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc
    import psycopg

    bound = psycopg.ClientCursor(driver).mogrify(sql, params) if params else sql
    try:
        connection = adbc.connect(conninfo_of(driver, suffix="adbc"), autocommit=True)
    except adbc_driver_manager.Error as exc:
        typed = _typed(exc)
        raise typed from typed.__cause__
    try:
        with connection.cursor() as cursor:
            cursor.execute(bound)
            yield cursor.fetch_record_batch()
    except adbc_driver_manager.Error as exc:
        typed = _typed(exc)
        raise typed from typed.__cause__
    finally:
        connection.close()


def _typed(error: Exception) -> EtlMetaError:
    import adbc_driver_manager

    details = dict(getattr(error, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    message = primary.decode(errors="replace") if primary else str(error).split("\n", 1)[0]
    sqlstate = getattr(error, "sqlstate", None) or None
    failed = sqlstate is None and isinstance(error, adbc_driver_manager.OperationalError)
    return translate_driver_error(message, sqlstate, connection_failed=failed)
