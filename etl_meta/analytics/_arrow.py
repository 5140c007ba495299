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
see): the driver's rows, fetched a batch at a time, each batch one Arrow table.

SQLite exports (``stream=True``): the ADBC SQLite driver reads the file in C, faster than the
``sqlite3`` command-line shell, where Python's ``sqlite3`` makes a tuple and a Python object per
value — but in a child process. The driver links its own copy of SQLite, and two copies of
SQLite in one process break each other's POSIX locks on the same file (sqlite.org, "How To
Corrupt An SQLite Database", 2.2.1): in the store's process, its reads missed committed rows and
left the store's own connection with ``disk I/O error``. The child (:data:`SQLITE_CHILD`)
imports only pyarrow and the driver, opens the file read-only, and streams the batches back in
Arrow's IPC format; starting it costs a fraction of a second, which an export amortizes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

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
    connection: ReadConnection,
    sql: str,
    params: Any,
    columns: Mapping[str, Kind],
    *,
    stream: bool = False,
) -> Iterator[Iterator[pa.Table]]:
    """The rows of ``sql`` as Arrow tables of ``columns``, read while the block iterates.

    ``stream``: an export, whatever its size; on SQLite the rows are read in a child process.
    """
    if connection.in_transaction:
        yield _row_batches(connection.driver, sql, params, columns)
    elif connection.dialect.name == "postgresql":
        with _adbc_reader(connection.driver, sql, params) as reader:
            yield (_conform(batch, columns) for batch in reader)
    elif stream:
        with _sqlite_child(connection, sql, params) as reader:
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
    import numpy as np
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


def _conform(batch: pa.RecordBatch | pa.Table, columns: Mapping[str, Kind]) -> pa.Table:
    """An ADBC batch (or table) with the names of ``columns`` and the Arrow type of each kind:
    ADBC gives ``int4`` as int32, ``numeric`` as an opaque extension over its text, a
    ``timestamp`` without time zone as naive (our statements' naive timestamps are UTC), and
    SQLite's timestamps as the stored text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for column, kind in zip(batch.columns, columns.values(), strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        if kind == "timestamp" and pa.types.is_string(column.type):
            column = pc.cast(column, pa.timestamp("us"))  # "YYYY-MM-DD HH:MM:SS.ffffff"
        if kind == "timestamp" and column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        target = arrow_type(kind)
        if kind == "category" and pa.types.is_dictionary(column.type):
            target = column.type  # names already encoded (see read_points_named)
        arrays.append(column if column.type == target else column.cast(target))
    return pa.Table.from_arrays(arrays, names=list(columns))


def sorted_by(table: pa.Table, column: str) -> pa.Table:
    """``table`` in ascending order of ``column`` (unique ids): untouched when it already is,
    which is how an unordered scan of ``metric`` usually returns it."""
    import numpy as np
    import pyarrow.compute as pc

    keys = table.column(column).to_numpy()
    if len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return table
    return table.take(pc.sort_indices(table.column(column)))


@contextmanager
def _adbc_connection(driver: Any) -> Iterator[Any]:
    """PostgreSQL: an ADBC connection (autocommit, as ADBC connections start) with the
    parameters of ``driver``'s (see above), closed after the block. Driver errors, at the start
    or while the block reads, become etl-meta's typed errors with the SQLSTATE and the
    server's primary message only: the driver's own quotes the statement.

    ADBC's low-level API, not its DB-API module: that one imports ``pyarrow.dataset``, which
    imports pandas, a third of a second an export does not need.
    """
    import adbc_driver_manager
    import adbc_driver_postgresql

    try:
        database = adbc_driver_postgresql.connect(conninfo_of(driver, suffix="adbc"))
        try:
            connection = adbc_driver_manager.AdbcConnection(database)
        except BaseException:
            database.close()
            raise
    except adbc_driver_manager.Error as exc:
        typed = _typed(exc)
        raise typed from typed.__cause__
    try:
        yield connection
    except adbc_driver_manager.Error as exc:
        typed = _typed(exc)
        raise typed from typed.__cause__
    finally:
        connection.close()
        database.close()


@contextmanager
def adbc_query(connection: Any, sql: str) -> Iterator[pa.RecordBatchReader]:
    """The rows of ``sql`` (no parameters) on an ADBC connection, read while the block runs."""
    import adbc_driver_manager
    import pyarrow as pa

    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_sql_query(sql)
        stream, _ = statement.execute_query()
        yield pa.RecordBatchReader.from_stream(stream)
    finally:
        statement.close()


def _bound(driver: Any, sql: str, params: Any) -> str:
    import psycopg

    return psycopg.ClientCursor(driver).mogrify(sql, params) if params else sql


@contextmanager
def _adbc_reader(driver: Any, sql: str, params: Any) -> Iterator[pa.RecordBatchReader]:
    """PostgreSQL: ``sql`` read by the ADBC driver on a connection of its own."""
    with (
        _adbc_connection(driver) as connection,
        adbc_query(connection, _bound(driver, sql, params)) as reader,
    ):
        yield reader


#: A whole metric frame's names, by the ids its points hold (see :func:`read_points_named`).
_RUN_NAMES = "SELECT id, external_run_id, orchestrator FROM execution WHERE id = ANY(%s)"
_COMPONENT_NAMES = (
    "SELECT component.id, job.name, component.name FROM component "
    "JOIN job ON job.id = component.job_id WHERE component.id = ANY(%s)"
)


def read_points_named(
    connection: ReadConnection, sql: str, params: Any, columns: Mapping[str, Kind]
) -> pa.Table:
    """PostgreSQL: a whole metric frame as its points with ids (``sql``: id, execution_id,
    component_id, name, attempt, step, value, recorded_at), then the names of their runs,
    jobs and components, in one read-only snapshot; the names are joined in Arrow.

    Binary ``COPY`` of a million points with five names each spent most of its time sending
    and decoding the names; a few thousand runs and components have them once each.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    driver = connection.driver
    with _adbc_connection(driver) as adbc:

        def read(statement: str) -> pa.Table:
            with adbc_query(adbc, statement) as reader:
                return reader.read_all()

        read("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        points = read(_bound(driver, sql, params))
        ids = [pc.unique(points.column(i)).to_pylist() for i in (1, 2)]
        runs = read(_bound(driver, _RUN_NAMES, (ids[0],)))
        parts = read(_bound(driver, _COMPONENT_NAMES, (ids[1],)))
        read("COMMIT")

    def names(table: pa.Table, key: str, index: tuple[int, ...]) -> list[pa.DictionaryArray]:
        # Each point's row among the names, then each name column dictionary-encoded once:
        # the frame's categoricals come from codes, without hashing a string per point.
        at = pc.index_in(points.column(key).cast(pa.int64()), table.column(0).cast(pa.int64()))
        found = at.combine_chunks() if isinstance(at, pa.ChunkedArray) else at
        encoded = []
        for i in index:
            names = pc.dictionary_encode(table.column(i)).combine_chunks()
            codes = pc.take(names.indices, found)
            encoded.append(pa.DictionaryArray.from_arrays(codes, names.dictionary))
        return encoded

    run_id, orchestrator = names(runs, "execution_id", (1, 2))
    job_name, component_name = names(parts, "component_id", (1, 2))
    named = [
        points.column(0),
        points.column(1),
        run_id,
        orchestrator,
        job_name,
        component_name,
        *points.columns[3:],
    ]
    return _conform(pa.Table.from_arrays(named, names=list(columns)), columns)


def _typed(error: Exception) -> EtlMetaError:
    import adbc_driver_manager

    details = dict(getattr(error, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    message = primary.decode(errors="replace") if primary else str(error).split("\n", 1)[0]
    sqlstate = getattr(error, "sqlstate", None) or None
    failed = sqlstate is None and isinstance(error, adbc_driver_manager.OperationalError)
    return translate_driver_error(message, sqlstate, connection_failed=failed)


#: The child process that reads a SQLite export (see the module's docstring): the job as JSON on
#: stdin, Arrow IPC on stdout, a failure as one line on stderr and exit code 1.
SQLITE_CHILD = """
import json, sys
import adbc_driver_manager as adbc
import adbc_driver_sqlite
import pyarrow as pa

def statement(sql):
    made = adbc.AdbcStatement(connection)
    made.set_sql_query(sql)
    return made

job = json.load(sys.stdin)
try:
    connection = adbc.AdbcConnection(adbc_driver_sqlite.connect(job["path"]))
    for pragma in ("PRAGMA busy_timeout=%d" % job["busy_timeout"], "PRAGMA query_only=ON"):
        statement(pragma).execute_update()
    query = statement(job["sql"])
    query.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
    if job["params"]:
        names = [str(i) for i in range(len(job["params"]))]
        query.bind(pa.RecordBatch.from_pylist([dict(zip(names, job["params"]))]))
    stream, _ = query.execute_query()
    reader = pa.RecordBatchReader.from_stream(stream)
except Exception as error:
    sys.stderr.write(str(error).split("\\n", 1)[0] + "\\n")
    sys.exit(1)
with pa.ipc.new_stream(sys.stdout.buffer, reader.schema) as out:
    for batch in reader:
        out.write_batch(batch)
"""


@contextmanager
def _sqlite_child(
    connection: ReadConnection, sql: str, params: Any
) -> Iterator[Iterator[pa.RecordBatch]]:
    """``sql`` read by the ADBC SQLite driver in a child process, as a stream of batches."""
    import pyarrow as pa

    url = connection.driver.execute("PRAGMA database_list").fetchone()[2]
    busy = connection.driver.execute("PRAGMA busy_timeout").fetchone()[0]
    job = {"path": url, "busy_timeout": busy, "sql": sql, "params": list(params or ())}
    child = subprocess.Popen(
        [sys.executable, "-c", SQLITE_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(job, default=str).encode())
        child.stdin.close()
        try:
            reader = pa.ipc.open_stream(child.stdout)
        except pa.ArrowInvalid:  # nothing written: the child failed before its first batch
            reader = None
        if reader is not None:
            yield iter(reader)
    finally:
        child.stdout.close()  # type: ignore[union-attr]
        code = child.wait()
    if code != 0 or reader is None:
        message = child.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
        raise translate_driver_error(message or f"the SQLite reader exited with {code}", None)
