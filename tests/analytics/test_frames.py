"""Typed columns (``etl_meta.analytics._frames``): what pandas itself would make of the values.

Every column kind, from driver values and from Arrow, must equal what plain pandas makes of the
same values with ``astype`` — dtype, categories (sorted, ``str``), missing values — so a frame
never depends on the way it was read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from etl_meta.analytics._arrow import rows_table
from etl_meta.analytics._frames import categorical, column, from_arrow, from_rows

VALUES = {
    "int": [3, 1, 2],
    "float": [0.5, None, -1.0],
    "bool": [True, False, True],
    "text": ["b", None, "a"],
    "category": ["zeta", "alpha", None],
    "timestamp": ["2026-01-01 00:00:00.000001", None, "1999-12-31 23:59:59.000000"],
}


def _pandas_own(kind: str, values: list) -> pd.Series:
    series = pd.Series(values, dtype=object)
    if kind == "int":
        return series.astype("int64")
    if kind == "float":
        return series.astype("float64")
    if kind == "bool":
        return series.astype(bool)
    if kind == "text":
        return series.astype("str")
    if kind == "category":
        return series.astype("str").where(series.notna()).astype("category")
    return pd.to_datetime(series, utc=True).dt.as_unit("us")


@pytest.mark.parametrize("kind", list(VALUES))
def test_a_column_is_what_pandas_makes_of_its_values(kind):
    values = VALUES[kind]
    expected = _pandas_own(kind, values)
    made = pd.Series(column(values, kind))
    pd.testing.assert_series_equal(made, expected, check_names=False)
    via_arrow = from_arrow(rows_table([(v,) for v in values], {"c": kind}), {"c": kind})["c"]
    pd.testing.assert_series_equal(via_arrow, expected, check_names=False)


@pytest.mark.parametrize("categories", [1, 2, 127, 40_000])
def test_categoricals_have_sorted_str_categories_and_the_right_codes(categories):
    names = [f"c{index:05d}" for index in reversed(range(categories))]  # unsorted
    codes = (np.arange(300) % categories).astype(np.int32)
    made = categorical(codes, names)
    sorted_names = pd.Index(sorted(names), dtype="str")  # every category, used or not
    expected = pd.Series(pd.Categorical([names[c] for c in codes], categories=sorted_names))
    pd.testing.assert_series_equal(pd.Series(made), expected)


def test_empty_results_keep_every_columns_type():
    columns = dict(zip(VALUES, VALUES, strict=True))
    empty = from_rows([], columns)
    assert empty.empty and list(empty.columns) == list(VALUES)
    pd.testing.assert_frame_equal(empty, from_arrow(rows_table([], columns), columns))
    assert str(empty["timestamp"].dtype) == "datetime64[us, UTC]"
    assert empty["category"].cat.categories.dtype == "str"


def test_an_arrow_category_with_missing_values_keeps_them_missing():
    table = pa.table({"c": pa.array(["b", None, "a", "b"])})
    frame = from_arrow(table, {"c": "category"})
    assert frame["c"].cat.categories.tolist() == ["a", "b"]
    assert frame["c"].isna().tolist() == [False, True, False, False]
