"""PostgreSQL arrays of numbers and timestamps read straight into numpy.

One run's points are read as one row of ``array_agg`` columns (see :mod:`._run_arrays`). In
binary, an array of a fixed-width type is a small header and then, per element, its length
and its big-endian value: numpy views the values with a stride past the lengths and converts
them in one copy, where psycopg's own array loader makes a Python object per element, and a
row per point costs a tuple per point and a transposition to columns. The loaders are
registered on one cursor (:func:`arrays_cursor`), never on a connection's adapters, so nothing
else reads arrays this way.

A ``timestamptz`` is microseconds since 2000-01-01 UTC on the wire. A value a Python
``datetime`` cannot hold (``infinity``, ``-infinity``, years past 9999) raises the
:class:`psycopg.DataError` psycopg's own timestamp loader raises, so every read path of a
metric frame fails alike (``etl_meta.store._errors`` makes it a ``ValidationError``).
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import numpy as np

__all__ = ["arrays_cursor"]

# The binary array header: dimensions, "has nulls" flag, element type; then, per dimension,
# its size and lower bound.
_TWO_INTS = struct.Struct(">ii")
_HEADERS = {1: struct.Struct(">ii"), 2: struct.Struct(">iiii")}
#: Microseconds from 1970-01-01 (numpy's epoch) to 2000-01-01 (PostgreSQL's).
_EPOCH_2000_US = 946_684_800_000_000
#: What a ``datetime`` holds, in microseconds since 2000-01-01 (psycopg's limits too).
_FIRST_US = int(np.datetime64("0001-01-01T00:00:00", "us").astype(np.int64)) - _EPOCH_2000_US
_LAST_US = int(np.datetime64("9999-12-31T23:59:59.999999", "us").astype(np.int64)) - _EPOCH_2000_US

#: Element type name → (its big-endian numpy type, the frame's numpy type).
_TYPES: dict[str, tuple[str, Any]] = {
    "int2": (">i2", np.int64),
    "int4": (">i4", np.int64),
    "int8": (">i8", np.int64),
    "float4": (">f4", np.float64),
    "float8": (">f8", np.float64),
    "timestamptz": (">i8", np.int64),
}


def _values(data: Any, wire: np.dtype, out: Any) -> np.ndarray:
    """The elements of a binary array without nulls, as ``out`` values in its shape."""
    dimensions, has_nulls = _TWO_INTS.unpack_from(data)
    if dimensions == 0:
        return np.empty(0, dtype=out)  # '{}'
    shape = _HEADERS[dimensions].unpack_from(data, 12)[::2] if dimensions <= 2 else None
    header = 12 + 8 * dimensions
    count = shape[0] if dimensions == 1 else math.prod(shape or (-1,))
    step = 4 + wire.itemsize  # each element: its length (int4), then its value
    if has_nulls or shape is None or len(data) != header + count * step:
        # array_agg of a NOT NULL column never gives this; a schema change might.
        import psycopg

        raise psycopg.DataError("an array with nulls or over two dimensions, read as numbers")
    # The values, strided past the lengths, converted to native order in one copy.
    values = np.ndarray((count,), wire, data, header + 4, (step,)).astype(out)
    return values if dimensions == 1 else values.reshape(shape)


def _loader(type_name: str) -> type:
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    wire, out = np.dtype(_TYPES[type_name][0]), _TYPES[type_name][1]
    timestamps = type_name == "timestamptz"

    class NumpyArrayLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            values = _values(data, wire, out)
            if not timestamps:
                return values
            if values.size and (
                np.minimum.reduce(values) < _FIRST_US or np.maximum.reduce(values) > _LAST_US
            ):
                import psycopg

                raise psycopg.DataError("timestamp out of the range a datetime holds")
            # The UTC wall clock, as the naive loader of the row path gives it.
            return (values + _EPOCH_2000_US).view("datetime64[us]")

    NumpyArrayLoader.__name__ = NumpyArrayLoader.__qualname__ = f"{type_name}_array_loader"
    return NumpyArrayLoader


@functools.cache
def _loaders() -> dict[str, type]:
    return {name: _loader(name) for name in _TYPES}


def arrays_cursor(driver: Any) -> Any:
    """A binary psycopg cursor reading arrays of :data:`_TYPES` as numpy arrays (timestamps as
    naive UTC ``datetime64[us]``). Other types load as psycopg loads them."""
    cursor = driver.cursor(binary=True)
    types = cursor.adapters.types
    for name, loader in _loaders().items():
        cursor.adapters.register_loader(types[name].array_oid, loader)
    return cursor
