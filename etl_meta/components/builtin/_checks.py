"""The individual checks behind the ``validate`` type; pandas is imported when they run.

Each check yields a :class:`Check` that records counts and dtypes, never values from the rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsInt

if TYPE_CHECKING:
    import pandas as pd

    from etl_meta.components.builtin.quality import Rules


@dataclass(frozen=True)
class Check:
    """The outcome of one rule on one column (``column`` is ``None`` for table-wide rules)."""

    rule: str
    column: str | None
    passed: bool
    failing_rows: int | None = None
    detail: str | None = None

    @property
    def metric_name(self) -> str:
        """``failed.<rule>.<column>``, or ``failed.<rule>`` for a table-wide rule."""
        return f"failed.{self.rule}" + (f".{self.column}" if self.column else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "passed": self.passed,
            "failing_rows": self.failing_rows,
            "detail": self.detail,
        }

    def describe(self) -> str:
        where = f"{self.rule}({self.column})" if self.column else self.rule
        if self.failing_rows is not None:
            plural = "" if self.failing_rows == 1 else "s"
            return f"{where}: {self.failing_rows} row{plural}"
        return f"{where}: {self.detail}"


def _rows(rule: str, column: str | None, offending: SupportsInt) -> Check:
    # pandas counts are numpy scalars: a numpy ``passed`` would make the record unwritable as
    # JSON (Dagster refuses such metadata), so both become plain Python values first.
    count = int(offending)
    return Check(rule, column, count == 0, count)


def _missing(rule: str, column: str) -> Check:
    return Check(rule, column, False, None, "column missing")


def run_checks(
    frame: pd.DataFrame,
    *,
    columns: Mapping[str, str],
    primary_key: Sequence[str],
    rules: Rules,
    allow_extra_columns: bool,
) -> list[Check]:
    """Every check the schema and rules ask for, in a stable order."""
    checks: list[Check] = list(_row_counts(frame, rules))
    checks += _schema(frame, columns, allow_extra_columns)
    if primary_key:
        checks.append(_primary_key(frame, list(primary_key)))
    for column in rules.not_null:
        checks.append(
            _rows("not_null", column, frame[column].isna().sum())
            if column in frame.columns
            else _missing("not_null", column)
        )
    for entry in rules.unique:
        checks.append(_unique(frame, [entry] if isinstance(entry, str) else list(entry)))
    for column, bounds in rules.ranges.items():
        checks.append(_range(frame, column, bounds.min, bounds.max))
    for column, allowed in rules.allowed_values.items():
        if column not in frame.columns:
            checks.append(_missing("allowed_values", column))
            continue
        values = frame[column]
        checks.append(
            _rows("allowed_values", column, (values.notna() & ~values.isin(allowed)).sum())
        )
    return checks


def _row_counts(frame: pd.DataFrame, rules: Rules) -> Iterator[Check]:
    if rules.min_rows is not None:
        ok = len(frame) >= rules.min_rows
        yield Check(
            "min_rows", None, ok, None, f"{len(frame)} rows, at least {rules.min_rows} required"
        )
    if rules.max_rows is not None:
        ok = len(frame) <= rules.max_rows
        yield Check(
            "max_rows", None, ok, None, f"{len(frame)} rows, at most {rules.max_rows} allowed"
        )


def _schema(frame: pd.DataFrame, columns: Mapping[str, str], allow_extra: bool) -> Iterator[Check]:
    for column, expected in columns.items():
        if column not in frame.columns:
            yield _missing("column", column)
            continue
        yield Check("column", column, True)
        actual = frame[column]
        ok = dtype_matches(actual, expected)
        yield Check("dtype", column, ok, None, f"expected {expected}, got {actual.dtype}")
    if not allow_extra:
        for column in frame.columns:
            if column not in columns:
                yield Check("unexpected_column", str(column), False, None, "not in the schema")


def _primary_key(frame: pd.DataFrame, key: list[str]) -> Check:
    label = ",".join(key)
    missing = [c for c in key if c not in frame.columns]
    if missing:
        return Check("primary_key", label, False, None, f"column(s) missing: {', '.join(missing)}")
    parts = frame[key]
    nulls = parts.isna().any(axis=1)
    duplicated = parts.duplicated(keep=False) & ~nulls
    return _rows("primary_key", label, (nulls | duplicated).sum())


def _unique(frame: pd.DataFrame, key: list[str]) -> Check:
    label = ",".join(key)
    missing = [c for c in key if c not in frame.columns]
    if missing:
        return Check("unique", label, False, None, f"column(s) missing: {', '.join(missing)}")
    present = frame[key].dropna()
    return _rows("unique", label, present.duplicated(keep=False).sum())


def _range(frame: pd.DataFrame, column: str, low: Any, high: Any) -> Check:
    import pandas as pd
    from pandas.api import types

    if column not in frame.columns:
        return _missing("ranges", column)
    values = frame[column]
    if types.is_datetime64_any_dtype(values.dtype):
        # Dates in YAML stay text (configuration is JSON); compare them as timestamps.
        low = None if low is None else pd.Timestamp(low)
        high = None if high is None else pd.Timestamp(high)
    try:
        offending = pd.Series(False, index=values.index)
        if low is not None:
            offending |= (values < low).fillna(False)
        if high is not None:
            offending |= (values > high).fillna(False)
    except (TypeError, ValueError):
        return Check("ranges", column, False, None, f"{values.dtype} values cannot be compared")
    return _rows("ranges", column, offending.sum())


def _family(dtype: Any) -> str:
    """The kind of a dtype: what ``validate`` compares, ignoring width and time unit."""
    import pandas as pd
    from pandas.api import types

    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_integer_dtype(dtype):
        return "integer"
    if types.is_float_dtype(dtype):
        return "floating"
    if types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if types.is_object_dtype(dtype):
        return "object"
    return str(dtype)


def dtype_matches(values: pd.Series, expected: str) -> bool:
    """True when ``values`` fits the dtype a schema declares (see ``Validate``)."""
    from pandas.api import types

    try:
        wanted = _family(types.pandas_dtype(expected))
    except TypeError:  # not a dtype pandas knows: only an exact name matches
        return str(values.dtype) == expected
    actual = _family(values.dtype)
    if wanted == "object" or wanted == actual:
        return True
    if wanted == "floating" and actual == "integer":
        return True
    if wanted == "string" and actual == "object":
        return types.infer_dtype(values, skipna=True) in ("string", "empty")
    return False
