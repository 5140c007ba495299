"""Output of ``etl-meta metrics query``: tables for people, streamed CSV/JSON/Parquet files.

Exports stream pages of :func:`etl_meta.analytics.metrics_page` into a writer, so an export never
holds every point in memory; files are written under a temporary name, then renamed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import typer
from rich.table import Table

from etl_meta.cli._common import (
    console,
    err_console,
    when,
)
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

#: Rows fetched per page while exporting (and the size above which a progress bar shows).
PAGE_ROWS = 100_000
NOTHING = "no metric points match"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # one format on every row: parsers infer it once


class MetricsFormat(StrEnum):
    """How ``metrics query`` writes its result."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def count_points(store: MetadataStore, filters: dict[str, Any]) -> int:
    """How many points :func:`etl_meta.analytics.metrics_frame` would return for ``filters``."""
    import sqlalchemy as sa

    from etl_meta.analytics.metrics import metrics_query

    query = metrics_query(store, **filters).order_by(None)
    counted = sa.select(sa.func.count()).select_from(query.subquery())
    with store.transaction(readonly=True) as session:
        return int(session.execute(counted).scalar_one())


def pages(
    store: MetadataStore, filters: dict[str, Any], limit: int | None
) -> Iterator[pd.DataFrame]:
    """Pages of at most :data:`PAGE_ROWS` points, oldest first, ``limit`` rows in all."""
    from etl_meta.analytics import metrics_page

    cursor: str | None = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = PAGE_ROWS if remaining is None else min(PAGE_ROWS, remaining)
        page = metrics_page(store, cursor=cursor, limit=size, **filters)
        if not page.frame.empty:
            yield page.frame
        if remaining is not None:
            remaining -= len(page.frame)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# --- writers -----------------------------------------------------------------------------------


def _iso_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns as ISO-8601 UTC text (``2026-01-31T12:00:00.000000Z``)."""
    import pandas as pd

    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.strftime(_TIMESTAMP_FORMAT)
    return frame


class _CsvWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        _iso_timestamps(frame).to_csv(self.stream, header=self.header, index=False)
        self.header = False

    def close(self) -> None:
        self.stream.flush()


class _JsonWriter:
    """One JSON array of objects, written a page at a time."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.first = True
        stream.write("[")

    def write(self, frame: pd.DataFrame) -> None:
        text = _iso_timestamps(frame).astype(object)
        text = text.where(text.notna(), None)
        for record in text.to_dict("records"):
            self.stream.write("\n  " if self.first else ",\n  ")
            self.stream.write(json.dumps(record, allow_nan=False))
            self.first = False

    def close(self) -> None:
        self.stream.write("\n]\n" if not self.first else "]\n")
        self.stream.flush()


class _ParquetWriter:
    """Typed columns: tz-aware UTC timestamps, int64, float64, dictionary-encoded names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: Any = None
        self.schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            # Each page's categoricals bring their own dictionary (and index width): fix one
            # schema for the whole file and cast every page to it.
            self.schema = pa.schema(
                [
                    pa.field(f.name, pa.dictionary(pa.int32(), pa.string()))
                    if pa.types.is_dictionary(f.type)
                    else pa.field(
                        f.name, pa.string() if pa.types.is_large_string(f.type) else f.type
                    )
                    for f in table.schema
                ]
            )
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table.select(self.schema.names).cast(self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _export(
    fmt: MetricsFormat, out: Path | None, frames: Iterator[pd.DataFrame], total: int
) -> int:
    """Write ``frames`` as ``fmt`` to ``out`` (atomically) or stdout; returns rows written."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        # A bar is for people: big exports only, and only when stderr is a terminal.
        disable=total <= PAGE_ROWS or not err_console.is_terminal,
    )
    partial = out.with_name(out.name + ".partial") if out is not None else None
    stream: IO[str] | None = None
    written = 0
    try:
        if fmt is MetricsFormat.parquet:
            assert partial is not None
            writer: Any = _ParquetWriter(partial)
        else:
            if partial is not None:
                stream = partial.open("w", encoding="utf-8", newline="")
            target = stream or sys.stdout
            writer = _CsvWriter(target) if fmt is MetricsFormat.csv else _JsonWriter(target)
        with progress:
            task = progress.add_task("export", total=total)
            for frame in frames:
                writer.write(frame)
                written += len(frame)
                progress.advance(task, len(frame))
        writer.close()
        if stream is not None:
            stream.close()
            stream = None
        if partial is not None and out is not None:
            os.replace(partial, out)
    except BaseException:
        if stream is not None:
            stream.close()
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    return written


# --- tables ------------------------------------------------------------------------------------


def format_number(value: Any, *, signed: bool = False) -> str:
    """A number for people: integers whole, others to 4 decimals, tiny or huge ones in e-notation.

    Missing values (``None``, NaN) are blank; ``signed`` prefixes ``+`` to positive numbers.
    """
    text = _unsigned(value)
    if signed and text and not text.startswith("-") and float(value) != 0:
        return "+" + text
    return text


def _unsigned(value: Any) -> str:
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN
        return ""
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    if 1e-4 <= abs(number) < 1e12:
        return f"{number:.4f}".rstrip("0").rstrip(".")
    return f"{number:.6g}"


def print_frame(title: str, frame: pd.DataFrame, numeric: Sequence[str], more: int) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(column, justify="right" if column in numeric else "left", overflow="fold")
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if isinstance(value, datetime):
                cells.append(when(value))
            elif column in numeric:
                cells.append(format_number(value))
            else:
                cells.append("" if value is None else str(value))
        table.add_row(*cells)
    console.print(table)
    if more > 0:
        console.print(
            f"… {more} more rows (raise --limit, or export them all with "
            "--format csv|json|parquet -o FILE)",
            highlight=False,
        )


POINT_TABLE = {
    "recorded_at": "recorded_at",
    "job": "job",
    "component": "component",
    "name": "name",
    "value": "value",
    "external_run_id": "run",
    "attempt": "attempt",
    "step": "step",
}


# --- commands ----------------------------------------------------------------------------------


def write_frames(
    fmt: MetricsFormat, out: Path | None, frames: Iterator[pd.DataFrame], total: int
) -> int:
    try:
        return _export(fmt, out, frames, total)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {out or 'stdout'}: ", end="")
        err_console.print(exc.strerror or str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from None


def say_nothing(fmt: MetricsFormat, out: Path | None = None) -> None:
    """Say that no point matched: in the table, or on stderr beside an export.

    Exports keep stdout for data and write no file; JSON on stdout is still ``[]``, so a
    program parsing it sees an empty list, not empty output.
    """
    (console if fmt is MetricsFormat.table else err_console).print(NOTHING, highlight=False)
    if fmt is MetricsFormat.json and out is None:
        sys.stdout.write("[]\n")


def report_written(out: Path | None, written: int) -> None:
    if out is not None:
        err_console.print(f"wrote {written} rows to {out}", highlight=False, markup=False)
