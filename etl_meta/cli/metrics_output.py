"""Output of ``etl-meta metrics query``: tables for people, and the progress, errors and
messages around an export (written by :mod:`etl_meta.cli.metrics_export`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from etl_meta.cli._common import (
    console,
    err_console,
    when,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: An export of more rows than this shows a progress bar (on a terminal).
PROGRESS_ROWS = 100_000
NOTHING = "no metric points match"


class MetricsFormat(StrEnum):
    """How ``metrics query`` writes its result."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


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


def write_export(
    fmt: MetricsFormat,
    out: Path | None,
    tables: Iterable[pa.Table],
    count: Callable[[], int],
) -> int:
    """Export ``tables`` (see :func:`etl_meta.cli.metrics_export.export`); returns the rows
    written. On a terminal, a progress bar shows a large export's progress against
    ``count()``: a count costs a good part of the export, so a pipe or a cron job does without.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from etl_meta.cli.metrics_export import export

    total = count() if err_console.is_terminal else None
    progress = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=total is None or total <= PROGRESS_ROWS or not err_console.is_terminal,
    )

    def counted() -> Iterator[pa.Table]:
        task = progress.add_task("export", total=total)
        for table in tables:
            yield table
            progress.advance(task, table.num_rows)

    try:
        with progress:
            return export(fmt.value, out, counted())
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {out or 'stdout'}: ", end="")
        err_console.print(exc.strerror or str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from None


def say_nothing(fmt: MetricsFormat, out: Path | None = None) -> None:
    """Say that no point matched: in the table, or on stderr beside an export.

    Exports keep stdout for data and write no file; JSON on stdout is still ``[]`` (the export
    writes it), so a program parsing it sees an empty list, not empty output.
    """
    (console if fmt is MetricsFormat.table else err_console).print(NOTHING, highlight=False)


def report_written(out: Path | None, written: int) -> None:
    if out is not None:
        err_console.print(f"wrote {written} rows to {out}", highlight=False, markup=False)
