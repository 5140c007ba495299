"""Run an analyst query and hand back a typed pandas DataFrame.

Two ways to read, chosen by the expected size of the result:

* **Rows** — small metric results (one run's points, a short page, one metric's aggregates, the
  latest values of recent runs: :attr:`Shaped.small`) and the run statements built per call
  (``run_history``, ``step_attempts``, ``success_rate``): one statement on a connection of the
  store's own pool, its rows fetched by the driver, the frame built column by column
  (:func:`._frames.from_rows`). A shape's statement is built and compiled once
  (:mod:`._compiled`), so a call only binds its values; on PostgreSQL psycopg prepares a
  statement it runs often on the server.
* **Arrow** — large metric results (whole frames, long pages, wide aggregates): a stream of
  Arrow tables (:mod:`._arrow`: binary ``COPY`` through ADBC on PostgreSQL, batches of driver
  rows on SQLite), then the frame from Arrow columns (:func:`._frames.from_arrow`). A whole
  frame on PostgreSQL reads its points with ids and their names apart, joined in Arrow
  (:func:`._arrow.read_points_named`). Exports write the stream as it arrives
  (:func:`read_batches`).

A CSV export on PostgreSQL is the server's own ``COPY … TO STDOUT (FORMAT csv)``, written as it
arrives (:func:`read_csv`): no row is decoded on the client.

Inside ``store.transaction()`` every read runs on the transaction's connection, so it sees the
transaction's own writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from etl_meta.analytics._arrow import arrow_stream, empty_table, read_points_named, sorted_by
from etl_meta.analytics._compiled import Shaped, compile_statement
from etl_meta.analytics._connections import read_connection
from etl_meta.analytics._frames import Kind, from_arrow, from_rows
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["CsvCopy", "Kind", "read_batches", "read_csv", "read_frame"]


def read_frame(
    store: MetadataStore, query: sa.Select | Shaped, columns: Mapping[str, Kind]
) -> pd.DataFrame:
    """``query``'s rows as a DataFrame with ``columns`` (name → kind), in that order.

    Timestamps are tz-aware UTC; ``category`` columns are pandas categoricals (names repeat a
    lot in metric frames); integers that may be missing come back as nullable ``Int64``.
    """
    import pyarrow as pa

    if isinstance(query, Shaped) and not query.small:
        with read_connection(store) as connection:
            dialect = connection.dialect
            named = dialect.name == "postgresql" and not connection.in_transaction
            if query.ids is not None and named:
                ids = query.ids.compiled(dialect)
                sql, params = ids.sql, ids.bind(query.values)
                table = read_points_named(connection, sql, params, columns)
            else:
                compiled = query.compiled(dialect)
                sql, params = compiled.sql, compiled.bind(query.values)
                with arrow_stream(connection, sql, params, columns) as batches:
                    tables = list(batches)
                table = pa.concat_tables(tables) if tables else empty_table(columns)
        if query.sort_by is not None:
            table = sorted_by(table, query.sort_by)
        return from_arrow(table, columns)
    with read_connection(store) as connection:
        if isinstance(query, Shaped):
            compiled = query.compiled(connection.dialect)
            params = compiled.bind(query.values)
        else:
            compiled = compile_statement(query, connection.dialect)
            params = compiled.bind({})
        rows = connection.rows(compiled.sql, params)
    return from_rows(rows, columns)


@contextmanager
def read_batches(
    store: MetadataStore, shaped: Shaped, columns: Mapping[str, Kind], *, export: bool = False
) -> Iterator[Iterator[pa.Table]]:
    """``shaped``'s rows as Arrow tables, in the statement's order, streamed from the database
    while the block runs (nothing holds every row). Columns as :func:`read_frame`'s, with
    categories as strings. ``export``: the rows are read the fastest way whatever their number
    (see :mod:`._arrow`)."""
    with read_connection(store) as connection:
        compiled = shaped.compiled(connection.dialect)
        params = compiled.bind(shaped.values)
        with arrow_stream(connection, compiled.sql, params, columns, stream=export) as batches:
            yield batches


#: ``to_char`` pattern of the ISO-8601 UTC text the Arrow exports write (``…T12:00:00.000000Z``).
_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


#: Bytes of CSV :class:`CsvCopy` hands on at a time.
_CHUNK_BYTES = 1 << 20


class CsvCopy:
    """CSV lines (no header) as the database writes them, read from the server as they are
    iterated; :attr:`rows` is set once every chunk has been read."""

    def __init__(self, driver: Any, sql: str, params: Any) -> None:
        self._driver, self._sql, self._params = driver, sql, params
        self.rows = 0

    def __iter__(self) -> Iterator[bytes]:
        with self._driver.cursor() as cursor:
            with cursor.copy(self._sql, self._params) as copy:
                # The server sends a message per row: handing on ~1 MiB at a time keeps the
                # per-chunk work (a write, the progress bar) off each row.
                pending: list[Any] = []
                size = 0
                for row in copy:
                    pending.append(row)
                    size += len(row)
                    if size >= _CHUNK_BYTES:
                        yield b"".join(pending)
                        pending, size = [], 0
                if pending:
                    yield b"".join(pending)
            self.rows = cursor.rowcount


@contextmanager
def read_csv(
    store: MetadataStore, shaped: Shaped, columns: Mapping[str, Kind]
) -> Iterator[CsvCopy | None]:
    """PostgreSQL, outside ``store.transaction()``: ``shaped``'s rows as CSV written by the
    server's ``COPY``, read while the block runs. ``None`` anywhere else: read
    :func:`read_batches` instead.

    The text is that of the Arrow CSV export: strings quoted, timestamps ISO-8601 UTC, empty for
    a missing value. Floats are PostgreSQL's shortest exact text, which writes a small
    exponent with two digits (``1.5e-07``, where Arrow writes ``1.5e-7``).
    """
    with read_connection(store) as connection:
        if connection.dialect.name != "postgresql" or connection.in_transaction:
            yield None
            return
        query = shaped.statement_unbound()
        selected = []
        for column, (name, kind) in zip(query.selected_columns, columns.items(), strict=True):
            value = sa.func.to_char(column, _ISO) if kind == "timestamp" else column
            selected.append(value.label(name))
        compiled = compile_statement(
            query.with_only_columns(*selected, maintain_column_froms=True),
            connection.dialect,
        )
        quoted = ", ".join(
            connection.dialect.identifier_preparer.quote(name)
            for name, kind in columns.items()
            if kind in ("text", "category", "timestamp")
        )
        options = f"FORMAT csv, FORCE_QUOTE ({quoted})" if quoted else "FORMAT csv"
        copy_sql = f"COPY ({compiled.sql}) TO STDOUT ({options})"
        yield CsvCopy(connection.driver, copy_sql, compiled.bind(shaped.values))
