"""Rows into columns (``etl_meta.transpose.columns_of``): zip's result, without the full garbage
collections ``zip(*rows)`` sets off on thousands of rows."""

from __future__ import annotations

import gc

import pytest

from etl_meta.transpose import ZIP_ROWS, columns_of


@pytest.mark.parametrize("count", [0, 1, ZIP_ROWS, ZIP_ROWS + 1, 5_000])
def test_columns_are_zips_columns(count):
    rows = [(index, f"name-{index % 7}", index / 3, None) for index in range(count)]
    columns = columns_of(rows, 4)
    expected = [[row[index] for row in rows] for index in range(4)]
    assert [list(each) for each in columns] == expected


def _full_collections(transpose, rows) -> int:
    gc.collect()
    before = gc.get_stats()[2]["collections"]
    for _ in range(40):
        transpose(rows)
    return gc.get_stats()[2]["collections"] - before


def test_many_rows_set_off_no_full_collection():
    rows = [(index, f"name-{index % 7}", index / 3) for index in range(20_000)]
    assert gc.isenabled()
    # The test can tell: zip(*rows) holds an iterator per row, which the collector promotes
    # until it collects the whole heap.
    assert _full_collections(lambda each: list(zip(*each, strict=True)), rows) > 0
    assert _full_collections(lambda each: columns_of(each, 3), rows) == 0
