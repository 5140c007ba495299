"""Rows packed by PostgreSQL into one ``bytea`` and read into numpy
(``etl_meta.analytics._pg_packed``): the same values psycopg's own loaders give, in numpy types,
and the same refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from etl_meta.analytics import _pg_packed
from tests.backends import postgresql_only

pytestmark = postgresql_only()


@pytest.fixture
def connection(store_url: str) -> Iterator[psycopg.Connection]:
    dsn = make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as opened:
        opened.execute("SET TIME ZONE 'Asia/Kathmandu'")  # UTC on the wire whatever the session's
        yield opened


def _packed(
    connection: psycopg.Connection, kinds: list[_pg_packed.Field], rows: str, columns: str
) -> tuple[bytes | None, int]:
    """``pack`` over the rows of a ``VALUES`` list, and their count, as the store reads them."""
    sql = f"SELECT {_packed_sql(kinds)}, count(*) FROM (VALUES {rows}) AS t({columns})"
    return connection.cursor(binary=True).execute(sql).fetchone()


def _packed_sql(kinds: list[_pg_packed.Field]) -> str:
    """``pack`` of columns a, b, c… of these kinds, as SQL."""
    fields = [(sa.column(name), kind) for name, kind in zip("abcdef", kinds, strict=False)]
    return str(_pg_packed.pack(fields).compile(dialect=postgresql.dialect()))


def _read(connection: psycopg.Connection, sql: str) -> list[object]:
    """psycopg's own binary loaders: what every other read path of a frame gets."""
    return [row[0] for row in connection.cursor(binary=True).execute(sql).fetchall()]


@pytest.mark.parametrize(
    "literals",
    [
        ("1::int2", "(-2)::int2", "32767::int2"),
        ("1::int4", "(-2147483648)::int4", "2147483647::int4"),
        ("0::int8", "(-9223372036854775808)::int8", "9223372036854775807::int8"),
    ],
)
def test_integers_read_as_psycopg_reads_them(connection, literals):
    rows = ", ".join(f"({literal})" for literal in literals)
    data, count = _packed(connection, ["int"], rows, "a")
    records = _pg_packed.unpack(data, count, 1)
    read = _pg_packed.by_field(records, np.arange(count))
    assert read.dtype == np.int64 and read.shape == (1, 3) and read.flags.c_contiguous
    assert read[0].tolist() == _read(connection, f"SELECT a FROM (VALUES {rows}) AS t(a)")


def test_floats_read_as_psycopg_reads_them(connection):
    rows = "(1e300::float8), (-2.5), ('NaN'), ('Infinity'), ('-Infinity'), ('-0.0'), (5e-324)"
    data, count = _packed(connection, ["float"], rows, "a")
    read = _pg_packed.floats(
        _pg_packed.by_field(_pg_packed.unpack(data, count, 1), np.arange(7))[0]
    )
    expected = np.array(_read(connection, f"SELECT a FROM (VALUES {rows}) AS t(a)"))
    assert read.dtype == np.float64
    np.testing.assert_array_equal(read, expected)  # NaN equals NaN here
    assert np.signbit(read[5]) and read[6] == 5e-324  # -0.0 and the smallest subnormal kept


def test_timestamps_are_the_utc_wall_clock(connection):
    rows = (
        "('0001-01-01 00:00:00+00'::timestamptz), ('2026-03-01 12:00:00.123456+05:45'), "
        "('9999-12-31 23:59:59.999999+00')"
    )
    data, count = _packed(connection, ["timestamp"], rows, "a")
    field = _pg_packed.by_field(_pg_packed.unpack(data, count, 1), np.arange(count))[0]
    read = _pg_packed.timestamps(field)
    assert read.dtype == np.dtype("datetime64[us]")
    assert read.tolist() == [
        datetime(1, 1, 1),
        datetime(2026, 3, 1, 6, 15, 0, 123456),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]


@pytest.mark.parametrize("value", ["infinity", "-infinity", "10000-01-01 00:00:00+00"])
def test_a_timestamp_no_datetime_holds_is_refused_as_psycopg_refuses_it(connection, value):
    with pytest.raises(psycopg.DataError):
        _read(connection, f"SELECT '{value}'::timestamptz")
    data, count = _packed(connection, ["timestamp"], f"('{value}'::timestamptz)", "a")
    field = _pg_packed.by_field(_pg_packed.unpack(data, count, 1), np.arange(count))[0]
    with pytest.raises(psycopg.DataError, match="range a datetime holds"):
        _pg_packed.timestamps(field)


def test_records_keep_their_fields_apart_and_sort_by_one(connection):
    rows = (
        "(3::int4, 0.5::float8, '2026-01-01 00:00:00+00'::timestamptz, 30::int8), "
        "(1, -1.5, '2026-01-02 00:00:00+00', 10), (2, 7.25, '2026-01-03 00:00:00+00', 20)"
    )
    data, count = _packed(connection, ["int", "float", "timestamp", "int"], rows, "a, b, c, d")
    records = _pg_packed.unpack(data, count, 4)
    order = records[:, 0].argsort(kind="stable")
    fields = _pg_packed.by_field(records, order)
    assert fields.flags.c_contiguous and fields.shape == (4, 3)
    assert fields[0].tolist() == [1, 2, 3] and fields[3].tolist() == [10, 20, 30]
    assert _pg_packed.floats(fields[1]).tolist() == [-1.5, 7.25, 0.5]
    assert _pg_packed.timestamps(fields[2]).tolist() == [
        datetime(2026, 1, 2),
        datetime(2026, 1, 3),
        datetime(2026, 1, 1),
    ]


def test_no_rows_are_no_records(connection):
    data, count = (
        connection.cursor(binary=True)
        .execute(
            f"SELECT {_packed_sql(['int'])}, count(*) FROM (SELECT 1::int8 AS a WHERE false) AS t"
        )
        .fetchone()
    )
    assert data is None and count == 0
    assert _pg_packed.unpack(data, count, 2).shape == (0, 2)


def test_a_row_lost_to_a_null_field_is_refused_not_read_short(connection):
    # || of NULL is NULL and string_agg skips it: the count of rows gives it away.
    data, count = _packed(connection, ["int", "float"], "(1::int8, 1.0::float8), (2, NULL)", "a, b")
    assert count == 2 and len(data) == 16
    with pytest.raises(psycopg.DataError, match="16 bytes where 2 records of 2 fields take 32"):
        _pg_packed.unpack(data, count, 2)
