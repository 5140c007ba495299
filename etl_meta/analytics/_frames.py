"""Typed DataFrames from driver rows or Arrow tables, on pandas' and pyarrow's public APIs.

A frame's types never depend on how it was read (see ``docs/analytics.md``):

* ``category`` columns are pandas categoricals whose categories are sorted (code point order) and
  of dtype ``str``, exactly as ``astype("category")`` makes them;
* ``timestamp`` columns are ``datetime64[us, UTC]``;
* ``int`` columns are ``int64``, or nullable ``Int64`` when a value is missing;
* ``float`` columns are ``float64``, ``bool`` columns ``bool``, ``text`` columns pandas' ``str``.

Each column is made as its final pandas array first (:func:`from_rows` from the driver's Python
values, :func:`from_arrow` from an Arrow table), then the frame is ``pandas.DataFrame`` of those
arrays: pandas never infers a type. Category dtypes are cached by their categories, because
building one validates its categories, and names repeat from call to call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from etl_meta.transpose import columns_of

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# pandas and numpy are imported where a frame is built: an export streams Arrow tables and never
# needs them, and importing pandas is a good part of a short command's start.

#: Column kinds a frame may hold; each maps to one pyarrow and one pandas type.
Kind = Literal["int", "float", "text", "category", "timestamp", "bool"]


@functools.cache
def utc() -> pd.DatetimeTZDtype:
    """The dtype of timestamp columns: microseconds, UTC."""
    import pandas as pd

    return pd.DatetimeTZDtype("us", "UTC")


@functools.lru_cache(maxsize=512)
def category_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The dtype of a categorical with these sorted, distinct categories (immutable: shared)."""
    import pandas as pd

    return pd.CategoricalDtype(pd.Index(list(categories), dtype="str"), ordered=False)


def categorical(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical:
    """``codes`` (−1 = missing) into unsorted ``categories`` → the categorical with sorted ones."""
    import numpy as np
    import pandas as pd

    count = len(categories)
    if count > 1:
        order = sorted(range(count), key=categories.__getitem__)
        rank = np.empty(count + 1, dtype=np.int32)
        rank[order] = np.arange(count, dtype=np.int32)
        rank[count] = -1  # codes of −1 index the last slot: missing stays missing
        codes = rank[codes]
        categories = [categories[i] for i in order]
    dtype = category_dtype(tuple(categories))
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _frame(columns: Mapping[str, Kind], arrays: Sequence[Any]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(dict(zip(columns, arrays, strict=True)))


# --- rows from the driver (small results) ------------------------------------------------------


def from_rows(rows: Sequence[Sequence[Any]], columns: Mapping[str, Kind]) -> pd.DataFrame:
    """A typed frame from driver rows: timestamps as ``datetime`` s (PostgreSQL) or the stored
    UTC text (SQLite), booleans as ``bool`` or 0/1."""
    values = columns_of(rows, len(columns))
    return _frame(
        columns, [column(v, kind) for v, kind in zip(values, columns.values(), strict=True)]
    )


def column(values: Sequence[Any], kind: Kind) -> Any:
    """One frame column of ``kind`` from Python values (``None`` = missing)."""
    import numpy as np
    import pandas as pd

    if kind == "float":
        return np.array(values, dtype=np.float64)  # None → NaN
    if kind == "int":
        return pd.array(values, dtype="Int64") if None in values else np.array(values, np.int64)
    if kind == "bool":
        return np.array(values, dtype=bool)
    if kind == "category":
        categories = sorted(set(values) - {None})
        codes = dict(zip(categories, range(len(categories)), strict=True))
        codes[None] = -1
        found = np.fromiter(map(codes.__getitem__, values), dtype=np.int32, count=len(values))
        return pd.Categorical.from_codes(
            found, dtype=category_dtype(tuple(categories)), validate=False
        )
    if kind == "timestamp":
        first = next((v for v in values if v is not None), None)
        if isinstance(first, str):  # SQLite's stored "YYYY-MM-DD HH:MM:SS.ffffff" UTC text
            return pd.array(np.array(values, dtype="datetime64[us]"), dtype=utc())
        import pyarrow as pa  # aware datetimes: pyarrow converts them in C, to UTC

        stamps = pa.array(values, type=pa.timestamp("us", tz="UTC"))
        return pd.array(stamps.to_numpy(zero_copy_only=False), dtype=utc())
    return pd.array(values, dtype="str")


# --- Arrow tables (large results) ---------------------------------------------------------------


def from_arrow(table: Any, columns: Mapping[str, Kind]) -> pd.DataFrame:
    """A typed frame from an Arrow table of ``columns`` (see ``._tables.conform``)."""
    return _frame(columns, [arrow_column(table.column(n), k) for n, k in columns.items()])


def arrow_column(values: Any, kind: Kind) -> Any:
    """One frame column of ``kind`` from an Arrow column of its type (categories as strings)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "category":
        if not pa.types.is_dictionary(values.type):
            values = pc.dictionary_encode(values)
        encoded = values.combine_chunks()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return categorical(codes.astype(np.int32), encoded.dictionary.to_pylist())
    if kind == "int" and values.null_count:
        return values.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
    if kind == "timestamp":  # UTC microseconds; nulls become NaT
        return pd.array(values.to_numpy(), dtype=utc())
    if kind == "text":
        return values.to_pandas().array
    return values.to_numpy()
