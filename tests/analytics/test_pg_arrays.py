"""PostgreSQL arrays of numbers and timestamps read straight into numpy
(``etl_meta.analytics._pg_arrays``): the same values psycopg's own loaders give, in numpy types,
and the same refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import psycopg
import pytest
from sqlalchemy.engine import make_url

from etl_meta.analytics._pg_arrays import arrays_cursor
from tests.backends import postgresql_only

pytestmark = postgresql_only()


@pytest.fixture
def connection(store_url: str) -> Iterator[psycopg.Connection]:
    dsn = make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as opened:
        opened.execute("SET TIME ZONE 'Asia/Kathmandu'")  # UTC on the wire whatever the session's
        yield opened


def _read(connection: psycopg.Connection, sql: str) -> object:
    return arrays_cursor(connection).execute(sql).fetchone()[0]


@pytest.mark.parametrize(
    ("literal", "dtype"),
    [
        ("ARRAY[1, -2, 32767]::int2[]", np.int64),
        ("ARRAY[1, -2, 2147483647]::int4[]", np.int64),
        ("ARRAY[1, -2, 9223372036854775807]::int8[]", np.int64),
        ("ARRAY[1.5, -0.25, 'NaN', 'Infinity']::float4[]", np.float64),
        ("ARRAY[1e300, -2.5, 'NaN', '-Infinity']::float8[]", np.float64),
    ],
)
def test_numbers_read_as_psycopg_reads_them(connection, literal, dtype):
    read = _read(connection, f"SELECT {literal}")
    expected = connection.cursor(binary=True).execute(f"SELECT {literal}").fetchone()[0]
    assert isinstance(read, np.ndarray) and read.dtype == dtype
    np.testing.assert_array_equal(read, np.array(expected, dtype=dtype))


def test_two_dimensions_keep_their_shape(connection):
    read = _read(connection, "SELECT ARRAY[[1, 2, 3], [4, 5, 6]]::int8[]")
    np.testing.assert_array_equal(read, [[1, 2, 3], [4, 5, 6]])


def test_timestamps_are_the_utc_wall_clock(connection):
    sql = (
        "SELECT ARRAY['0001-01-01 00:00:00+00', '2026-03-01 12:00:00.123456+05:45', "
        "'9999-12-31 23:59:59.999999+00']::timestamptz[]"
    )
    read = _read(connection, sql)
    assert read.dtype == np.dtype("datetime64[us]")
    assert read.tolist() == [
        datetime(1, 1, 1),
        datetime(2026, 3, 1, 6, 15, 0, 123456),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]


@pytest.mark.parametrize("value", ["infinity", "-infinity", "10000-01-01 00:00:00+00"])
def test_a_timestamp_no_datetime_holds_is_refused_as_psycopg_refuses_it(connection, value):
    with pytest.raises(psycopg.DataError):
        connection.cursor(binary=True).execute(f"SELECT '{value}'::timestamptz").fetchone()
    with pytest.raises(psycopg.DataError, match="range a datetime holds"):
        _read(connection, f"SELECT ARRAY['{value}']::timestamptz[]")


def test_nulls_are_refused_and_empty_arrays_are_empty(connection):
    with pytest.raises(psycopg.DataError, match="nulls"):
        _read(connection, "SELECT ARRAY[1, NULL]::int8[]")
    empty = _read(connection, "SELECT ARRAY[]::float8[]")
    assert empty.dtype == np.float64 and empty.shape == (0,)
    assert _read(connection, "SELECT NULL::int8[]") is None


def test_other_types_load_as_psycopg_loads_them(connection):
    row = arrays_cursor(connection).execute("SELECT ARRAY['a', 'b']::text[], 5::int8").fetchone()
    assert row == (["a", "b"], 5)


def test_more_than_two_dimensions_are_refused(connection):
    with pytest.raises(psycopg.DataError, match="over two dimensions"):
        _read(connection, "SELECT ARRAY[[[1], [2]], [[3], [4]]]::int8[]")
