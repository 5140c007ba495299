"""Typed DataFrames from driver rows or Arrow tables, column by column.

A frame's types never depend on the path that read it (see ``docs/analytics.md``):

* ``category`` columns are pandas categoricals whose categories are sorted (code point order) and
  of dtype ``str``, exactly as ``astype("category")`` makes them;
* ``timestamp`` columns are ``datetime64[us, UTC]``;
* ``int`` columns are ``int64``, or nullable ``Int64`` when a value is missing;
* ``text`` columns are pandas' ``str`` dtype.

Small frames are dominated by fixed costs in pandas, not by rows: a ``CategoricalDtype`` built
from scratch validates its categories (about as long as fetching 50 rows), and a timestamp
column converted through pyarrow's generic ``to_pandas`` costs more than the query. So category
dtypes are cached by their categories (names repeat from call to call), and every column is
handed to pandas as a ready numpy or pandas array.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

#: Column kinds a frame may hold; each maps to one pyarrow and one pandas type.
Kind = Literal["int", "float", "text", "category", "timestamp", "bool"]

_UTC = pd.DatetimeTZDtype("us", "UTC")


@functools.lru_cache(maxsize=512)
def category_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The dtype of a categorical with these (sorted, distinct) categories, built once.

    A dtype is immutable, so frames may share it.
    """
    return pd.CategoricalDtype(pd.Index(list(categories), dtype="str"), ordered=False)


def categorical(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical:
    """``codes`` (−1 = missing) into unsorted ``categories`` → the sorted categorical."""
    count = len(categories)
    if count > 1:
        order = sorted(range(count), key=categories.__getitem__)
        rank = np.empty(count + 1, dtype=np.int32)
        rank[order] = np.arange(count, dtype=np.int32)
        rank[count] = -1  # codes of −1 index the last slot: missing stays missing
        codes = rank[codes]
        categories = [categories[i] for i in order]
    return pd.Categorical.from_codes(codes, dtype=category_dtype(tuple(categories)), validate=False)


def utc_timestamps(values: np.ndarray) -> Any:
    """``datetime64[us]`` values (UTC wall clock) as a ``datetime64[us, UTC]`` array."""
    values = values.astype("datetime64[us]", copy=False)
    simple_new = getattr(pd.arrays.DatetimeArray, "_simple_new", None)
    if simple_new is not None:
        # Wraps the buffer as is (the public constructor re-validates every value, which is
        # slower than the rest of a small frame); the values are already UTC microseconds.
        return simple_new(values, dtype=_UTC)
    return pd.array(values, dtype=_UTC)  # pragma: no cover (a pandas without _simple_new)


def frame(data: dict[str, Any], rows: int) -> pd.DataFrame:
    """The columns, in order, as a frame with a ``RangeIndex`` (no copies)."""
    return pd.DataFrame(data, index=pd.RangeIndex(rows), copy=False)


# --- rows from the driver (small results) ------------------------------------------------------


def from_rows(rows: list[tuple[Any, ...]], columns: Mapping[str, Kind], dialect: str) -> Any:
    """A typed frame from driver rows (SQLite: timestamps as stored UTC text; PostgreSQL: aware
    datetimes, booleans as ``bool``)."""
    count = len(rows)
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    data: dict[str, Any] = {}
    for (name, kind), column in zip(columns.items(), values, strict=True):
        data[name] = _column(column, kind, dialect)
    return frame(data, count)


def _column(column: Sequence[Any], kind: Kind, dialect: str) -> Any:
    if kind == "float":
        return np.array(column, dtype=np.float64)  # None → NaN
    if kind == "int":
        if None in column:
            return pd.array(column, dtype="Int64")
        return np.array(column, dtype=np.int64)
    if kind == "category":
        codes, uniques = pd.factorize(np.array(column, dtype=object))
        return categorical(codes, list(uniques))
    if kind == "timestamp":
        if dialect == "sqlite":  # "YYYY-MM-DD HH:MM:SS.ffffff" UTC text, or NULL
            return utc_timestamps(np.array(column, dtype="datetime64[us]"))
        return utc_timestamps(_aware_to_utc(column))
    if kind == "bool":
        return np.array(column, dtype=bool)
    return pd.array(np.array(column, dtype=object), dtype="str")


def _aware_to_utc(column: Sequence[Any]) -> np.ndarray:
    import pyarrow as pa

    # pyarrow converts each aware datetime to UTC (whatever the session's time zone) in C.
    array = pa.array(column, type=pa.timestamp("us", tz="UTC"))
    return array.cast(pa.int64()).to_numpy(zero_copy_only=False).astype("datetime64[us]")


# --- Arrow tables (large results) ---------------------------------------------------------------


def from_arrow(table: Any, columns: Mapping[str, Kind]) -> pd.DataFrame:
    """A typed frame from an Arrow table with ``columns`` (category columns as strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data: dict[str, Any] = {}
    for name, kind in columns.items():
        column = table.column(name)
        if kind == "category":
            encoded = pc.dictionary_encode(column).combine_chunks()
            indices = encoded.indices
            codes = indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
            data[name] = categorical(codes, encoded.dictionary.to_pylist())
        elif kind == "int" and column.null_count:
            data[name] = column.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
        elif kind == "timestamp":
            micros = pc.cast(column.combine_chunks(), pa.int64())
            stamps = micros.fill_null(0).to_numpy().view("datetime64[us]")
            if micros.null_count:
                stamps = stamps.copy()
                stamps[micros.is_null().to_numpy(zero_copy_only=False)] = np.datetime64("NaT")
            data[name] = utc_timestamps(stamps)
        elif kind in ("int", "float"):
            data[name] = column.to_numpy()
        else:
            data[name] = column.to_pandas().array
    return frame(data, table.num_rows)
