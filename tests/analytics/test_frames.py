"""Frames built column by column (``etl_meta.analytics._frames.frame``).

``frame`` makes pandas blocks through pandas' block manager directly when every column is one
it can take as is, and through ``pandas.api.internals.create_dataframe_from_blocks`` otherwise.
The two must give the same frame — values, dtypes, block types — for every column kind a frame
holds, or a pandas upgrade has changed the internals the fast path relies on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.api.internals import create_dataframe_from_blocks

from etl_meta.analytics import _frames
from etl_meta.analytics._frames import categorical, column, frame, repeated, utc_timestamps


def _public(data: dict[str, object], rows: int) -> pd.DataFrame:
    """The same frame through pandas' public low-level constructor."""
    blocks = [
        (values.reshape(1, -1) if isinstance(values, np.ndarray) else values, np.array([at]))
        for at, values in enumerate(data.values())
    ]
    return create_dataframe_from_blocks(
        blocks, index=pd.RangeIndex(rows), columns=pd.Index(list(data))
    )


def _columns(rows: int) -> dict[str, object]:
    stamps = np.arange(rows, dtype=np.int64).view("datetime64[us]")
    half = [1, None] * (rows // 2) + [1] * (rows % 2)
    return {
        "int": np.arange(rows, dtype=np.int64),
        "nullable int": pd.array(half, dtype="Int64"),
        "float": np.linspace(0.0, 1.0, rows),
        "bool": np.arange(rows) % 2 == 0,
        "text": column([f"t{i % 3}" for i in range(rows)], "text"),
        "one text": repeated("run-1", rows, "text"),
        "category": categorical(np.arange(rows, dtype=np.int32) % 2, ["b", "a"]),
        "one category": repeated("rows", rows, "category"),
        "timestamp": utc_timestamps(stamps),
    }


@pytest.mark.parametrize("rows", [0, 1, 54])
def test_the_block_manager_path_gives_the_public_constructors_frame(rows):
    assert _frames._INTERNALS is not None  # the pinned pandas: the fast path is taken
    data = _columns(rows)
    assert all(_frames._plain(values) for values in data.values())
    built, public = frame(data, rows), _public(data, rows)
    pd.testing.assert_frame_equal(built, public)
    assert list(built.dtypes) == list(public.dtypes)
    assert [type(b).__name__ for b in built._mgr.blocks] == [
        type(b).__name__ for b in public._mgr.blocks
    ]
    assert built["timestamp"].dt.tz is not None and str(built["timestamp"].dtype).endswith("UTC]")
    # The frame works as any other: an operation that consolidates blocks, and a copy.
    assert built.select_dtypes("number").shape == (rows, 3)
    pd.testing.assert_frame_equal(built.copy(), public)


def test_a_column_pandas_must_wrap_takes_the_public_path():
    naive = np.arange(3, dtype=np.int64).view("datetime64[us]")  # pandas wraps this one
    data = {"id": np.arange(3, dtype=np.int64), "at": naive}
    assert not _frames._plain(naive)
    built = frame(data, 3)
    pd.testing.assert_frame_equal(built, _public(data, 3))
    assert str(built["at"].dtype) == "datetime64[us]"


@pytest.mark.parametrize("public", [False, True])  # the block manager path, or pandas' own
def test_renaming_one_frames_axes_leaves_the_next_frames_alone(monkeypatch, public):
    if public:
        monkeypatch.setattr(_frames, "_INTERNALS", None)
    first = frame({"a": np.arange(3), "b": np.ones(3)}, 3)
    first.columns.name, first.index.name = "renamed", "rows"
    second = frame({"a": np.arange(3), "b": np.ones(3)}, 3)
    assert second.columns.name is None and second.index.name is None
    assert second.columns.tolist() == ["a", "b"] and second.index.equals(pd.RangeIndex(3))


@pytest.mark.parametrize("categories", [1, 126, 127, 40_000])
def test_categoricals_wrapped_as_they_are_equal_pandas_own(categories):
    names = tuple(f"c{index:05d}" for index in range(categories))
    dtype = _frames.category_dtype(names)
    codes = (np.arange(300) % categories).astype(_frames.codes_dtype(categories))
    wrapped = _frames.from_codes(codes, dtype)
    expected = pd.Categorical.from_codes(codes.astype(np.int64), dtype=dtype)
    assert wrapped.codes.dtype == expected.codes.dtype
    pd.testing.assert_extension_array_equal(wrapped, expected)


@pytest.mark.parametrize("public", [False, True])  # the block manager path, or pandas' own
def test_a_block_of_several_columns_is_the_frame_of_its_rows(monkeypatch, public):
    # One run's integer columns arrive as rows of one array (etl_meta.analytics._run_packed).
    if public:
        monkeypatch.setattr(_frames, "_INTERNALS", None)
    rows = 5
    integers = np.arange(3 * rows, dtype=np.int64).reshape(3, rows)
    values = np.linspace(0.0, 1.0, rows)
    blocks = [(integers, (0, 2, 3)), (values, (1,)), (repeated("x", rows, "category"), (4,))]
    built = _frames.blocks_frame(("a", "v", "b", "c", "k"), blocks, rows)
    expected = pd.DataFrame(
        {"a": integers[0], "v": values, "b": integers[1], "c": integers[2], "k": ["x"] * rows}
    ).astype({"k": "category"})
    pd.testing.assert_frame_equal(built, expected)
    assert built._mgr.nblocks == 3
    built.loc[0, "b"] = -1  # one column of the block written: the others keep their values
    assert built["b"].tolist() == [-1, *integers[1, 1:].tolist()]
    assert built["a"].tolist() == list(range(rows)) and built["c"].tolist()[0] == 2 * rows
    assert built["v"].tolist() == values.tolist()


@pytest.mark.parametrize("public", [False, True])  # the block manager path, or pandas' own
def test_a_layout_gives_the_frame_of_its_blocks(monkeypatch, public):
    # Every kind, a block of two columns among them; classes and placements worked out once.
    if public:
        monkeypatch.setattr(_frames, "_INTERNALS", None)
    rows = 4
    data = _columns(rows)
    kinds = {"int": "int", "float": "float", "bool": "bool", "text": "text"}
    kinds |= {"one text": "text", "category": "category", "one category": "category"}
    kinds |= {"timestamp": "timestamp"}
    names = ("pair a", *kinds, "pair b")
    singles = ((kind, (index + 1,)) for index, kind in enumerate(kinds.values()))
    layout = _frames.Layout(names, (("int", (0, len(names) - 1)), *singles))
    pair = np.arange(2 * rows, dtype=np.int64).reshape(2, rows)
    built = layout.frame([pair, *(data[name] for name in kinds)], rows)
    expected = frame({"pair a": pair[0], **{n: data[n] for n in kinds}, "pair b": pair[1]}, rows)
    pd.testing.assert_frame_equal(built, expected)
    assert built._mgr.nblocks == len(kinds) + 1
    # A value of another type than its kind makes (nullable integers) takes blocks_frame.
    nullable = pd.array([1, None, 3, 4], dtype="Int64")
    single = _frames.Layout(("n",), (("int", (0,)),))
    assert single.frame([np.arange(rows)], rows)["n"].dtype == np.int64
    pd.testing.assert_frame_equal(single.frame([nullable], rows), pd.DataFrame({"n": nullable}))
