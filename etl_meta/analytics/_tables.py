"""Driver results as Arrow tables with the Arrow type of each column kind.

Three sources, one result: ADBC tables (PostgreSQL outside a transaction, see :mod:`._adbc`),
``COPY … (FORMAT CSV)`` bytes (PostgreSQL inside ``store.transaction()``, which ADBC's own
connection could not see into) and driver rows (SQLite, and PostgreSQL results of more than a
thousand rows read as rows). :mod:`._frames` turns the table into the typed DataFrame.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from etl_meta.analytics._frames import Kind


def arrow_type(kind: Kind) -> Any:
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


def conform(table: Any, columns: Mapping[str, Kind]) -> Any:
    """An ADBC table with the names of ``columns`` and the Arrow type of each kind.

    ADBC gives ``int4`` as int32, ``numeric`` as an opaque extension over its text, and a
    ``timestamp`` without time zone as naive (our statements' naive timestamps are UTC). The
    SQLite driver gives timestamps as the stored UTC text, and infers each column's type from
    its values, so an empty result's types say nothing.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for column, kind in zip(table.columns, columns.values(), strict=True):
        target = arrow_type(kind)
        if table.num_rows == 0:
            arrays.append(pa.chunked_array([], type=target))
            continue
        if isinstance(column.type, pa.ExtensionType):
            column = pa.chunked_array(
                [chunk.storage for chunk in column.chunks], type=column.type.storage_type
            )
        if kind == "timestamp":
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column = pc.cast(column, pa.timestamp("us"))  # "YYYY-MM-DD HH:MM:SS.ffffff"
            if column.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
        arrays.append(column if column.type == target else column.cast(target))
    return pa.Table.from_arrays(arrays, names=list(columns))


def sorted_by(table: Any, column: str) -> Any:
    """``table`` in ascending order of ``column`` (unique ids): untouched when it already is,
    which is how an unordered scan of ``metric`` usually returns it."""
    import pyarrow.compute as pc

    keys = table.column(column).to_numpy()
    if len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return table
    return table.take(pc.sort_indices(table.column(column)))


def _struct(columns: Mapping[str, Kind], stored: Mapping[str, Any]) -> Any:
    import pyarrow as pa

    return pa.struct(
        [pa.field(name, stored.get(kind, arrow_type(kind))) for name, kind in columns.items()]
    )


def copy_csv(driver: Any, sql: str, params: Any, columns: Mapping[str, Kind]) -> Any:
    """``COPY (sql) TO STDOUT`` as CSV on a psycopg connection, parsed by pyarrow's
    multi-threaded reader (parameters bound client-side by psycopg, as for any ``COPY``)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    buffer = io.BytesIO()
    with driver.cursor() as cursor:  # noqa: SIM117 (copy needs the open cursor)
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV)", params) as copy:
            for chunk in copy:
                buffer.write(chunk)
    names = list(columns)
    if not buffer.tell():  # no rows: pyarrow refuses an empty CSV
        return pa.table(
            {name: pa.array([], type=arrow_type(kind)) for name, kind in columns.items()}
        )
    # Parse the bytes in place: a Python file object would be read through the GIL, block by
    # block (about a third of the parse time of a million rows).
    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(buffer.getbuffer())),
        read_options=pcsv.ReadOptions(column_names=names),
        convert_options=pcsv.ConvertOptions(
            column_types={name: arrow_type(kind) for name, kind in columns.items()},
            # COPY writes NULL as an empty unquoted field and "" as a quoted one.
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def rows_table(rows: list[tuple[Any, ...]], columns: Mapping[str, Kind], dialect: str) -> Any:
    """Driver rows as an Arrow table: one conversion of all the rows (tuples as structs),
    faster than a Python list per column once there are more than a few hundred rows.

    Timestamps are the stored UTC text and booleans 0/1 on SQLite, naive UTC datetimes on
    PostgreSQL (see :meth:`etl_meta.analytics._connections.ReadConnection.prepared_rows`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if dialect == "postgresql":
        naive = pa.array(rows, type=_struct(columns, {"timestamp": pa.timestamp("us")}))
        table = pa.Table.from_struct_array(naive)
        for index, kind in enumerate(columns.values()):
            if kind == "timestamp":
                utc = pc.assume_timezone(table.column(index), "UTC")
                table = table.set_column(index, table.field(index).name, utc)
        return table
    struct = _struct(columns, {"timestamp": pa.string(), "bool": pa.int64()})
    table = pa.Table.from_struct_array(pa.array(rows, type=struct))
    for index, kind in enumerate(columns.values()):
        if kind == "timestamp":
            # "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, as SQLite stores it and bucket expressions
            # render it: an ISO-8601 parse, fractional seconds included.
            parsed = pc.assume_timezone(pc.cast(table.column(index), pa.timestamp("us")), "UTC")
            table = table.set_column(index, table.field(index).name, parsed)
        elif kind == "bool":
            table = table.set_column(
                index, table.field(index).name, pc.cast(table.column(index), pa.bool_())
            )
    return table
