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

Inside ``store.transaction()`` every read runs on the transaction's connection, so it sees the
transaction's own writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from etl_meta.analytics._arrow import arrow_stream, empty_table, read_points_named, sorted_by
from etl_meta.analytics._compiled import Shaped, compile_statement
from etl_meta.analytics._connections import read_connection
from etl_meta.analytics._frames import Kind, from_arrow, from_rows
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Kind", "read_batches", "read_frame"]


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
