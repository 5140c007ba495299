"""CSV, JSON and Parquet exports of ``etl-meta metrics query``, written as the rows stream in.

The rows arrive as Arrow tables (:func:`etl_meta.analytics.metric_batches`), each written as
soon as it arrives, with Arrow's own writers and vectorized string building: no table of every
point is ever held, and no Python object is made per value. Files are written under a temporary
name, then renamed, so a failed export leaves no half-written file behind.

Formats: timestamps are ISO-8601 UTC text (``2026-01-31T12:00:00.000000Z``) in CSV and JSON;
numbers in their shortest exact form (CSV writes ``3`` for 3.0, as PostgreSQL's ``COPY`` does;
JSON ``3.0``, as ``json.dumps`` does); Parquet keeps the types (tz-aware timestamps, int64,
float64, dictionary-encoded names).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


class Writer(Protocol):
    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def export(fmt: str, out: Path | None, tables: Iterable[pa.Table]) -> int:
    """Write ``tables`` as ``fmt`` (csv, json, parquet) to ``out`` atomically, or to stdout
    (csv and json); returns the rows written. Nothing is left at ``out`` on an error, nor when
    no row was written."""
    with _Destination(out, opened=fmt != "parquet") as destination:
        if fmt == "parquet":
            writer: Writer = _ParquetWriter(destination.path)
        elif fmt == "csv":
            writer = _CsvWriter(destination.stream)
        else:
            writer = _JsonWriter(destination.stream)
        for table in tables:
            if table.num_rows:
                writer.write(table)
                destination.rows += table.num_rows
        writer.close()
    return destination.rows


class _Destination:
    """stdout, or ``out`` written under a temporary name (:attr:`path`), renamed to ``out``
    when the block ends with rows written, removed when it ends with none or raises.
    ``opened``: :attr:`stream` is open on it (a Parquet writer opens the path itself)."""

    def __init__(self, out: Path | None, *, opened: bool = True) -> None:
        self.out = out
        self.path = out.with_name(out.name + ".partial") if out is not None else Path("-")
        self.rows = 0
        self._file = self.path.open("wb") if out is not None and opened else None
        self.stream: IO[bytes] = self._file if self._file is not None else sys.stdout.buffer

    def __enter__(self) -> _Destination:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._file is not None:
            self._file.close()
        if self.out is None:
            return
        if kind is None and self.rows:
            os.replace(self.path, self.out)
        else:
            self.path.unlink(missing_ok=True)


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns (a DataFrame's categoricals) and large strings as plain strings."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if kind != field.type or pa.types.is_large_string(kind):
            string = pa.string() if pa.types.is_large_string(kind) else kind
            table = table.set_column(index, field.name, table.column(index).cast(string))
    return table


def _iso(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as ISO-8601 UTC text. Arrow formats a naive timestamp twenty times faster
    than a zoned one (no time-zone lookup per value), so the UTC values are formatted naive,
    ``YYYY-MM-DD HH:MM:SS.ffffff``, then given their ``T`` and ``Z``. (A zoned timestamp cast
    to a naive one keeps its UTC value, whatever its zone.)"""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(column.cast(pa.timestamp("us")), pa.string())
    return pc.binary_join_element_wise(pc.utf8_replace_slice(text, 10, 11, "T"), "Z", "")


class _CsvWriter:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.writer: Any = None

    def write(self, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        table = _plain(table)
        columns = [_iso(c) if pa.types.is_timestamp(c.type) else c for c in table.columns]
        table = pa.Table.from_arrays(columns, names=table.column_names)
        if self.writer is None:
            options = pcsv.WriteOptions(quoting_style="needed")
            self.writer = pcsv.CSVWriter(self.stream, table.schema, write_options=options)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.stream.flush()


class _JsonWriter:
    """One JSON array of objects, one object per line, built column-wise by Arrow and written
    from the Arrow buffer as it is (no Python string per row)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.first = True
        stream.write(b"[")

    def write(self, table: pa.Table) -> None:
        import numpy as np
        import pyarrow.compute as pc

        table = _plain(table)
        parts: list[Any] = []
        for index, name in enumerate(table.column_names):
            key = (",\n  {" if index == 0 else ", ") + json.dumps(name) + ": "
            parts += [key, _json_values(table.column(index))]
        records = pc.binary_join_element_wise(*parts, "}", "").combine_chunks()
        _, offsets, data = records.buffers()  # the strings are data[offsets[i]:offsets[i + 1]]
        bounds = np.frombuffer(offsets, dtype=np.int32)[records.offset :][: len(records) + 1]
        text = memoryview(data)[int(bounds[0]) : int(bounds[-1])]
        self.stream.write(text[1:] if self.first else text)  # the first object: no comma
        self.first = False

    def close(self) -> None:
        self.stream.write(b"]\n" if self.first else b"\n]\n")
        self.stream.flush()


def _json_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each value of ``column`` as JSON text (``null`` for a missing one); floats always with a
    decimal point or an exponent, as ``json.dumps`` writes them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_boolean(kind):
        text = pc.if_else(column, "true", "false")
    elif pa.types.is_timestamp(kind):
        text = pc.binary_join_element_wise('"', _iso(column), '"', "")
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if pc.any(pc.match_substring_regex(column, r'[\x00-\x1f"\\]')).as_py():
            # A value that needs escaping (rare in names and run ids): json.dumps does it.
            values = column.to_pylist()
            quoted = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            text = pa.chunked_array([pa.array(quoted, type=pa.string())])
        else:
            text = pc.binary_join_element_wise('"', column, '"', "")
    elif pa.types.is_floating(kind):
        # "3" → "3.0"; "0.5", "1e+20", "nan" and "inf" stay as they are.
        text = pc.replace_substring_regex(pc.cast(column, pa.string()), r"^(-?[0-9]+)$", r"\1.0")
    else:
        text = pc.cast(column, pa.string())
    return pc.fill_null(text, "null")


class _ParquetWriter:
    """Typed columns: tz-aware UTC timestamps, int64, float64, dictionary-encoded strings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: Any = None
        self.schema: Any = None

    def write(self, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = _plain(table)
        if self.writer is None:
            # Strings (names repeat) are dictionary-encoded, so pandas reads them as categoricals.
            self.schema = pa.schema(
                pa.field(f.name, pa.dictionary(pa.int32(), pa.string()))
                if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                else f
                for f in table.schema
            )
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
