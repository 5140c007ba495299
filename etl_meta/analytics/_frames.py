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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from etl_meta.transpose import columns_of

#: Column kinds a frame may hold; each maps to one pyarrow and one pandas type.
Kind = Literal["int", "float", "text", "category", "timestamp", "bool"]

_UTC = pd.DatetimeTZDtype("us", "UTC")
_STR = pd.StringDtype(na_value=np.nan)  # pandas' default "str" dtype


@functools.lru_cache(maxsize=512)
def category_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The dtype of a categorical with these (sorted, distinct) categories, built once.

    A dtype is immutable, so frames may share it.
    """
    return pd.CategoricalDtype(pd.Index(list(categories), dtype="str"), ordered=False)


def codes_dtype(categories: int) -> type[np.signedinteger]:
    """The type pandas keeps a categorical's codes in, for this many categories."""
    if categories < _INT8_MAX:
        return np.int8
    if categories < _INT16_MAX:
        return np.int16
    return np.int32 if categories < _INT32_MAX else np.int64


# np.iinfo builds an object per call: a fifth of a small categorical's cost.
_INT8_MAX, _INT16_MAX, _INT32_MAX = (int(np.iinfo(t).max) for t in (np.int8, np.int16, np.int32))


def from_codes(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """``pd.Categorical.from_codes(codes, dtype=dtype, validate=False)``; codes already of
    :func:`codes_dtype` are wrapped as they are (from_codes checks the dtype and the codes' type
    again, a third of a small categorical's cost)."""
    if _SIMPLE_CATEGORICAL is not None and codes.dtype == codes_dtype(len(dtype.categories)):
        return _SIMPLE_CATEGORICAL(codes, dtype)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


_SIMPLE_CATEGORICAL = getattr(pd.Categorical, "_simple_new", None)


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
    return from_codes(codes, category_dtype(tuple(categories)))


def utc_timestamps(values: np.ndarray) -> Any:
    """``datetime64[us]`` values (UTC wall clock) as a ``datetime64[us, UTC]`` array."""
    values = values.astype("datetime64[us]", copy=False)
    simple_new = getattr(pd.arrays.DatetimeArray, "_simple_new", None)
    if simple_new is not None:
        # Wraps the buffer as is (the public constructor re-validates every value, which is
        # slower than the rest of a small frame); the values are already UTC microseconds.
        return simple_new(values, dtype=_UTC)
    return pd.array(values, dtype=_UTC)  # pragma: no cover (a pandas without _simple_new)


@functools.lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    return pd.Index(list(names))


def _range_index(rows: int) -> pd.RangeIndex:
    """``pd.RangeIndex(rows)`` without re-checking its argument (a quarter of the time)."""
    simple_new = getattr(pd.RangeIndex, "_simple_new", None)
    return simple_new(range(rows)) if simple_new is not None else pd.RangeIndex(rows)


#: One block of a frame: its values, and the positions of its columns in the frame. Values are
#: a 1-D array (one column), or a 2-D numpy array with a row per position.
Block = tuple[Any, tuple[int, ...]]


def frame(data: dict[str, Any], rows: int) -> pd.DataFrame:
    """The columns, in order, as a frame with a ``RangeIndex`` (no copies): one block each.

    Every column is already a 1-D array of ``rows`` values of its final type, so each becomes
    its own pandas block as is: the ``DataFrame`` constructor would infer every column's type
    again and copy same-typed numpy columns into one 2-D block, which costs more than the rest
    of a 50-row frame and tens of milliseconds for a million rows. pandas consolidates blocks
    later only if an operation needs it.
    """
    return blocks_frame(
        tuple(data), [(values, (index,)) for index, values in enumerate(data.values())], rows
    )


def blocks_frame(columns: tuple[str, ...], blocks: list[Block], rows: int) -> pd.DataFrame:
    """A frame of ``columns`` from ready blocks (:data:`Block`), with a ``RangeIndex``.

    A block may hold several same-typed columns as rows of one 2-D array (a :class:`Layout`'s
    integer block, when the layout cannot build the frame itself): fewer blocks to make, and
    the layout pandas' own constructor gives a frame of numpy columns. The column index is
    cached per column list.

    The blocks are made by :func:`_blocks_frame` where pandas' internals are the ones it was
    written for, else by ``pandas.api.internals.create_dataframe_from_blocks``; the tests check
    that both give the same frame for every column kind.
    """
    # A view per frame: a frame's columns (or index) may be renamed in place, which must not
    # rename the next frame's.
    index = _column_index(columns).view()
    if _INTERNALS is not None and all(_plain(values) for values, _ in blocks):
        return _blocks_frame(blocks, rows, index)
    shaped = [
        (_two_dimensional(values), np.array(positions, dtype=np.intp))
        for values, positions in blocks
    ]
    return create_dataframe_from_blocks(shaped, index=_range_index(rows), columns=index)


def _two_dimensional(values: Any) -> Any:
    """A 1-D numpy column as a block's one row (extension arrays stay as they are)."""
    return values.reshape(1, -1) if isinstance(values, np.ndarray) and values.ndim == 1 else values


@dataclass(frozen=True)
class Layout:
    """A frame whose columns and block kinds are known before its values: one run's points
    (``._run_points.RUN_LAYOUT``) always make the same blocks.

    Each block is ``(kind, positions)``: an ``int``, ``float`` or ``bool`` block is a numpy
    array with a row per position (or 1-D, for one), any other kind one column's array as
    :func:`column` makes it. Their pandas block classes and placements are worked out once, so
    a frame costs the blocks' construction only: :func:`blocks_frame` checks and classifies
    every block again (12.7 µs against 7.6 µs for a run's eight blocks of 54 rows). A value not
    of the type its kind makes (a nullable ``Int64`` column, say) goes to :func:`blocks_frame`.
    """

    columns: tuple[str, ...]
    blocks: tuple[tuple[Kind, tuple[int, ...]], ...]

    def frame(self, values: Sequence[Any], rows: int) -> pd.DataFrame:
        """The frame of ``values``, one per block of :attr:`blocks`, in order."""
        made = self._made
        if made is None or list(map(type, values)) != made[0]:
            blocks = [
                (each, positions) for each, (_, positions) in zip(values, self.blocks, strict=True)
            ]
            return blocks_frame(self.columns, blocks, rows)
        built = [
            block(each.reshape(1, -1) if flat else each, ndim=2, placement=placement)
            for each, block, flat, placement in zip(values, *made[1:], strict=True)
        ]
        manager = _INTERNALS[2](  # type: ignore[index]
            built, [_column_index(self.columns).view(), _range_index(rows)], verify_integrity=False
        )
        return pd.DataFrame._from_mgr(manager, manager.axes)

    @functools.cached_property
    def _made(self) -> tuple[list[Any], ...] | None:
        """Per block, in four lists: the type its values have, pandas' block class, whether a
        column must be made a 2-D row, and its placement; ``None`` without pandas' internals."""
        if _INTERNALS is None:
            return None
        _, block_type, _ = _INTERNALS
        made: tuple[list[Any], ...] = ([], [], [], [])
        for kind, positions in self.blocks:
            sample = _SAMPLES[kind]()
            flat = len(positions) == 1 and (
                isinstance(sample, np.ndarray) or sample.dtype._supports_2d
            )
            for into, value in zip(
                made,
                (type(sample), block_type(sample.dtype), flat, _placement(positions)),
                strict=True,
            ):
                into.append(value)
        return made


#: A value of each kind, as the readers make them: its type and dtype decide the block class.
_SAMPLES: dict[Kind, Any] = {
    "int": lambda: np.zeros(1, dtype=np.int64),
    "float": lambda: np.zeros(1, dtype=np.float64),
    "bool": lambda: np.zeros(1, dtype=bool),
    "text": lambda: repeated("", 1, "text"),
    "category": lambda: repeated("", 1, "category"),
    "timestamp": lambda: utc_timestamps(np.zeros(1, dtype="datetime64[us]")),
}


def _internals() -> tuple[Any, ...] | None:
    """pandas' block classes and manager (pinned in requirements/constraints.txt), or ``None``."""
    try:
        from pandas._libs.internals import BlockPlacement
        from pandas.core.internals.blocks import get_block_type
        from pandas.core.internals.managers import BlockManager
    except ImportError:  # pragma: no cover (another pandas layout: the public function)
        return None
    return BlockPlacement, get_block_type, BlockManager


_INTERNALS = _internals()


def _plain(values: Any) -> bool:
    """A block :func:`_blocks_frame` takes as is: a 1-D or 2-D numpy array of numbers or
    booleans (not datetimes, which pandas wraps), or an extension array of an extension dtype
    (not one of numpy's, as naive datetime or timedelta arrays have)."""
    if isinstance(values, np.ndarray):
        return values.ndim in (1, 2) and values.dtype.kind in "biuf"
    return isinstance(values, pd.api.extensions.ExtensionArray) and isinstance(
        values.dtype, pd.api.extensions.ExtensionDtype
    )


@functools.lru_cache(maxsize=256)
def _placement(positions: tuple[int, ...]) -> Any:
    """pandas' placement of a block's columns (a slice for one column, as pandas makes it)."""
    assert _INTERNALS is not None
    if len(positions) == 1:
        return _INTERNALS[0](slice(positions[0], positions[0] + 1))
    return _INTERNALS[0](np.array(positions, dtype=np.intp))


def _blocks_frame(blocks: list[Block], rows: int, columns: pd.Index) -> pd.DataFrame:
    """:func:`blocks_frame` through pandas' block manager directly: what
    ``create_dataframe_from_blocks`` does, without re-checking, block by block, what
    :func:`_plain` already holds: 39 → 24 µs for 13 columns of 54 rows (median of 11
    alternating runs)."""
    assert _INTERNALS is not None
    _, block_type, block_manager = _INTERNALS
    made = []
    for values, positions in blocks:
        # numpy and 2-D capable extension arrays (tz-aware datetimes) are 2-D blocks, one row
        # per column, as pandas.core.internals.api._make_block shapes them.
        if values.ndim == 1 and (isinstance(values, np.ndarray) or values.dtype._supports_2d):
            values = values.reshape(1, -1)
        made.append(block_type(values.dtype)(values, ndim=2, placement=_placement(positions)))
    manager = block_manager(made, [columns, _range_index(rows)], verify_integrity=False)
    return pd.DataFrame._from_mgr(manager, manager.axes)


# --- rows from the driver (small results) ------------------------------------------------------


def from_rows(rows: list[tuple[Any, ...]], columns: Mapping[str, Kind]) -> Any:
    """A typed frame from driver rows: timestamps as naive UTC ``datetime`` s (PostgreSQL, see
    :mod:`.fetch`) or the stored UTC text (SQLite); booleans as ``bool`` or 0/1."""
    count = len(rows)
    values = columns_of(rows, len(columns))
    data: dict[str, Any] = {}
    for (name, kind), each in zip(columns.items(), values, strict=True):
        data[name] = column(each, kind)
    return frame(data, count)


def column(values: Sequence[Any], kind: Kind) -> Any:
    """One frame column of ``kind`` from Python values (as :func:`from_rows` reads them)."""
    if kind == "float":
        return np.array(values, dtype=np.float64)  # None → NaN
    if kind == "int":
        if None in values:
            return pd.array(values, dtype="Int64")
        return np.array(values, dtype=np.int64)
    if kind in ("category", "text") and _one_value(values):
        return repeated(values[0], len(values), kind)
    if kind == "category":
        categories = sorted(set(values) - {None})
        codes = dict(zip(categories, range(len(categories)), strict=True))
        codes[None] = -1
        return from_codes(
            np.fromiter(map(codes.__getitem__, values), dtype=np.int32, count=len(values)),
            category_dtype(tuple(categories)),
        )
    import pyarrow as pa

    if kind == "timestamp":
        # Naive UTC datetimes (PostgreSQL) or "YYYY-MM-DD HH:MM:SS.ffffff" UTC text (SQLite);
        # None → NaT. numpy parses the text fastest, pyarrow converts datetime objects about
        # ten times faster than numpy does.
        if isinstance(next((v for v in values if v is not None), ""), str):
            return utc_timestamps(np.array(values, dtype="datetime64[us]"))
        stamps = pa.array(values, type=pa.timestamp("us"))
        return utc_timestamps(stamps.to_numpy(zero_copy_only=False))
    if kind == "bool":
        return np.array(values, dtype=bool)
    return _STR.__from_arrow__(pa.array(values, type=pa.large_string()))


def repeated(value: str, count: int, kind: Literal["category", "text"]) -> Any:
    """A ``category`` or ``text`` column of ``count`` times ``value`` (no per-value work)."""
    if kind == "category":
        codes, dtype = np.zeros(count, dtype=np.int8), category_dtype((value,))
        if _SIMPLE_CATEGORICAL is not None:  # one category: int8 codes (from_codes' check)
            return _SIMPLE_CATEGORICAL(codes, dtype)
        return from_codes(codes, dtype)  # pragma: no cover (a pandas without _simple_new)
    import pyarrow as pa

    repeats = pa.repeat(pa.scalar(value, pa.large_string()), count)
    if _STR.storage == "pyarrow":  # the array as is (__from_arrow__ re-chunks and checks it)
        return pd.arrays.ArrowStringArray(repeats, dtype=_STR)
    return _STR.__from_arrow__(repeats)  # pragma: no cover (pandas without pyarrow strings)


def _one_value(values: Sequence[Any]) -> bool:
    """All ``values`` are one (non-missing) value: one run's rows repeat its run id,
    orchestrator and job, one metric's its name. Such a column skips the set, the sort and the
    per-value lookups (``count`` runs in C): 114 → 98 µs for benchmark (a)'s 54 rows."""
    return bool(values) and values[0] is not None and values.count(values[0]) == len(values)


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
