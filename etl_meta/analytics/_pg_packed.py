"""Rows packed by PostgreSQL into one ``bytea`` of fixed-width records, read into numpy.

One run's points are read as one row (see :mod:`._run_packed`). The server writes each point as
one record of big-endian 8-byte fields, with the types' own binary send functions
(``int8send``, ``float8send``, ``timestamptz_send``: what binary results carry on the wire),
and ``string_agg`` joins the records into one ``bytea``. The client reads that value as bytes,
and numpy views it as a table of big-endian ``int64`` and converts it to native order in one
copy: no element is a Python object, and no array header or per-element length is parsed.

Before, the points came as ``array_agg`` arrays, one per column, each decoded by a loader of its
own; one packed value cost the server and the client less (benchmark (a) on PostgreSQL: 407 →
354 µs per call, against 286 µs for the hand-written query, medians of 11 alternating runs).

Every field is 8 bytes: integers are sent as ``bigint``, so a record is a row of ``int64`` and a
float or timestamp field is that row's bits viewed as its type. A ``timestamptz`` is
microseconds since 2000-01-01 UTC; a value a Python ``datetime`` cannot hold (``infinity``,
``-infinity``, years past 9999) raises the :class:`psycopg.DataError` psycopg's own timestamp
loader raises, so every read path of a metric frame fails alike (``etl_meta.store._errors``
makes it a ``ValidationError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = ["Field", "by_field", "floats", "pack", "timestamps", "unpack"]

#: How a column is sent: as a ``bigint``, a ``double precision`` or a ``timestamptz``.
Field = Literal["int", "float", "timestamp"]

_SEND: dict[Field, str] = {
    "int": "int8send",
    "float": "float8send",
    "timestamp": "timestamptz_send",
}
_BIG_ENDIAN = np.dtype(">i8")
#: Microseconds from 1970-01-01 (numpy's epoch) to 2000-01-01 (PostgreSQL's).
_EPOCH_2000_US = 946_684_800_000_000
#: What a ``datetime`` holds, in microseconds since 2000-01-01 (psycopg's limits too).
_FIRST_US = int(np.datetime64("0001-01-01T00:00:00", "us").astype(np.int64)) - _EPOCH_2000_US
_LAST_US = int(np.datetime64("9999-12-31T23:59:59.999999", "us").astype(np.int64)) - _EPOCH_2000_US


def pack(fields: Sequence[tuple[sa.ColumnElement[Any], Field]]) -> sa.ColumnElement[bytes]:
    """The aggregate of a query's rows as one ``bytea``: per row, one record of ``fields`` in
    order, 8 bytes each. Integers are sent as ``bigint``; a ``float`` field must be a ``double
    precision`` column, a ``timestamp`` field a ``timestamptz`` one.

    A row with a NULL field would vanish from the aggregate (``||`` of NULL is NULL, and
    ``string_agg`` skips it): pass ``NOT NULL`` columns only, and read ``count(*)`` beside the
    aggregate, which :func:`unpack` checks the size against."""
    sent = [
        getattr(sa.func, _SEND[kind])(
            sa.cast(column, sa.BigInteger) if kind == "int" else column, type_=postgresql.BYTEA
        )
        for column, kind in fields
    ]
    record = sent[0]
    for each in sent[1:]:
        record = record.op("||", return_type=postgresql.BYTEA)(each)
    return sa.func.string_agg(
        record, sa.literal_column("''::bytea", postgresql.BYTEA), type_=postgresql.BYTEA
    )


def unpack(data: bytes | None, count: int, fields: int) -> np.ndarray:
    """``count`` records of ``fields`` 8-byte fields (:func:`pack`) as a read-only view of
    ``count`` rows by ``fields`` big-endian ``int64`` columns; ``None`` (the aggregate of no
    rows) is no records. Raises :class:`psycopg.DataError` when ``data`` is not that size."""
    size = 0 if data is None else len(data)
    if size != count * fields * 8:
        import psycopg

        raise psycopg.DataError(
            f"packed rows hold {size} bytes where {count} records of {fields} fields take "
            f"{count * fields * 8}"
        )
    if data is None:
        return np.empty((0, fields), dtype=_BIG_ENDIAN)
    return np.frombuffer(data, _BIG_ENDIAN).reshape(count, fields)


def by_field(records: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The records of :func:`unpack`, in ``order``, as a native ``int64`` array with a row per
    field, C-contiguous: the take makes the copy, ``astype`` the byte swap."""
    return records.T.take(order, axis=1).astype(np.int64)


def floats(field: np.ndarray) -> np.ndarray:
    """A ``float`` field's row of :func:`unpack` as ``float64`` (a view of its bits)."""
    return field.view(np.float64)


def timestamps(field: np.ndarray) -> np.ndarray:
    """A ``timestamp`` field's row of :func:`unpack` as ``datetime64[us]``: the UTC wall clock,
    as the naive loader of the row path gives it. Raises :class:`psycopg.DataError` for a
    value a ``datetime`` cannot hold."""
    if field.size and (np.minimum.reduce(field) < _FIRST_US or np.maximum.reduce(field) > _LAST_US):
        import psycopg

        raise psycopg.DataError("timestamp out of the range a datetime holds")
    return (field + _EPOCH_2000_US).view("datetime64[us]")
