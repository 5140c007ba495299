"""``etl-meta metrics``: query, export and plot metric points.

``query`` prints a table for people or exports CSV, JSON or Parquet for programs, streaming pages
of :func:`etl_meta.analytics.metrics_page` into the writer so an export never holds every point in
memory. ``plot`` draws a time-series chart with matplotlib. pandas, pyarrow and matplotlib are
imported inside the commands, so the rest of the command line starts without them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    parse_since,
    when,
)
from etl_meta.cli.jobs import open_store
from etl_meta.errors import ValidationError
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

app = typer.Typer(help="Query, export and plot metric points.", no_args_is_help=True)

#: Rows fetched per page while exporting (and the size above which a progress bar shows).
PAGE_ROWS = 100_000
#: Rows a table prints unless ``--limit`` says otherwise.
TABLE_ROWS = 50
#: More lines than this make an unreadable chart: the command asks for narrower filters.
MAX_SERIES = 20
#: Raw points a chart draws at most; beyond it, aggregate (``--agg mean --every 1h``).
MAX_PLOT_POINTS = 500_000
NOTHING = "no metric points match"
GROUPS = ("job", "component", "name")
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # one format on every row: parsers infer it once
_EVERY_WORDS = {"1h": "hour", "1d": "day", "1w": "week"}


class MetricsFormat(StrEnum):
    """How ``metrics query`` writes its result."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class AttemptsChoice(StrEnum):
    final = "final"
    all = "all"


class EveryChoice(StrEnum):
    hour = "1h"
    day = "1d"
    week = "1w"
    none = "none"


# --- options every command shares ------------------------------------------------------------

JobOption = Annotated[
    list[str] | None, typer.Option("--job", help="Only points of this job (repeatable).")
]
ComponentOption = Annotated[
    list[str] | None,
    typer.Option("--component", help="Only points of this component (repeatable)."),
]
NameOption = Annotated[
    list[str] | None, typer.Option("--name", help="Only this metric name (repeatable).")
]
RunOption = Annotated[
    str | None,
    typer.Option("--run", help="Only points of this run: the store's id or the orchestrator's."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="Points recorded at or after: 7d, 12h, 30m ago, or an ISO time (UTC)."),
]
UntilOption = Annotated[
    str | None, typer.Option(help="Points recorded before: an ISO time (UTC), or 7d, 12h ago.")
]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", help="Only jobs tagged KEY=VALUE (repeatable; all must match)."),
]
FilterOption = Annotated[
    str | None,
    typer.Option(
        "--filter",
        help="A filter expression, e.g. \"value > 0 and tag.env = 'prod'\" (docs/filters.md).",
    ),
]
AttemptsOption = Annotated[
    AttemptsChoice,
    typer.Option(
        "--attempts", help="final: only each step's last attempt (retries not counted twice)."
    ),
]
AggOption = Annotated[
    str | None,
    typer.Option(
        "--agg",
        help="Aggregate per time bucket: comma-separated from count, mean, min, max, last, "
        "p50, p90, p95, p99.",
    ),
]
EveryOption = Annotated[
    EveryChoice | None,
    typer.Option(
        "--every",
        help="Bucket for --agg: 1h, 1d (default), 1w (UTC, ISO weeks), or none for the window.",
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option(
        "--by", help="Group --agg by: comma-separated from job, component, name (default all)."
    ),
]


@dataclass(frozen=True)
class Selection:
    """What the filter options ask for, in the analytics API's terms."""

    filters: dict[str, Any]
    aggregates: tuple[str, ...] = ()
    every: str | None = "1d"
    by: tuple[str, ...] = GROUPS
    described: list[str] = field(default_factory=list)

    @property
    def aggregated(self) -> bool:
        return bool(self.aggregates)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _tags(values: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: use KEY=VALUE", param_hint="--tag")
        tags[key.strip()] = value.strip()
    return tags


def _selection(
    *,
    job: list[str] | None,
    component: list[str] | None,
    name: list[str] | None,
    run: str | None,
    since: str | None,
    until: str | None,
    tag: list[str] | None,
    filter_: str | None,
    attempts: AttemptsChoice,
    agg: str | None,
    every: EveryChoice | None,
    by: str | None,
) -> Selection:
    aggregates = _split(agg)
    if agg is not None and not aggregates:
        raise typer.BadParameter("name at least one aggregate, e.g. mean", param_hint="--agg")
    if not aggregates and (every is not None or by is not None):
        raise typer.BadParameter(
            "--every and --by aggregate points: give --agg too (e.g. --agg mean)",
            param_hint="--every/--by",
        )
    groups = _split(by) if by is not None else GROUPS
    bucket = None if every is EveryChoice.none else (every or EveryChoice.day).value
    tags = _tags(tag)
    filters: dict[str, Any] = {
        "job": job or None,
        "component": component or None,
        "name": name or None,
        "run": run,
        "since": parse_since(since) if since else None,
        "until": parse_since(until) if until else None,
        "tags": tags or None,
        "attempts": attempts.value,
        "filter": filter_ or None,
    }
    described = []
    if name:
        described.append(", ".join(name))
    if job:
        described.append("job " + ", ".join(job))
    if component:
        described.append("component " + ", ".join(component))
    if run:
        described.append(f"run {run}")
    if tags:
        described.append(", ".join(f"{k}={v}" for k, v in tags.items()))
    if aggregates:
        per = f" per {_EVERY_WORDS[bucket]}" if bucket else ""
        described.append(", ".join(aggregates) + per)
    if filters["since"]:
        described.append("since " + when(filters["since"]))
    if filters["until"]:
        described.append("until " + when(filters["until"]))
    if filter_ and len(filter_) <= 40:
        described.append(filter_)
    return Selection(filters, aggregates, bucket, groups, described)


def count_points(store: MetadataStore, filters: dict[str, Any]) -> int:
    """How many points :func:`etl_meta.analytics.metrics_frame` would return for ``filters``."""
    import sqlalchemy as sa

    from etl_meta.analytics.metrics import metrics_query

    query = metrics_query(store, **filters).order_by(None)
    counted = sa.select(sa.func.count()).select_from(query.subquery())
    with store.transaction(readonly=True) as session:
        return int(session.execute(counted).scalar_one())


def _pages(
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


def _print_frame(title: str, frame: pd.DataFrame, numeric: Sequence[str], more: int) -> None:
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


_POINT_TABLE = {
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


@app.command(
    "query",
    help="Metric points in long format, or aggregated per time bucket with --agg.\n\n"
    "Without --agg: one row per point, oldest first (each step's final attempt only, unless "
    "--attempts all). With --agg: one row per bucket and job/component/name (see --by). "
    "Timestamps are UTC, ISO-8601 in csv and json. Exports stream page by page.",
)
def query(
    job: JobOption = None,
    component: ComponentOption = None,
    name: NameOption = None,
    run: RunOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tag: TagOption = None,
    filter_: FilterOption = None,
    attempts: AttemptsOption = AttemptsChoice.final,
    agg: AggOption = None,
    every: EveryOption = None,
    by: ByOption = None,
    fmt: Annotated[
        MetricsFormat,
        typer.Option("--format", "-f", help="table for people; csv, json, parquet to export."),
    ] = MetricsFormat.table,
    out: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Write to FILE (required for parquet)."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help=f"At most N rows (table default {TABLE_ROWS}; exports: all)."),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print or export metric points, raw or aggregated (help text in the decorator)."""
    if fmt is MetricsFormat.parquet and out is None:
        raise typer.BadParameter("parquet is binary: give a file with -o FILE", param_hint="-o")
    if fmt is MetricsFormat.table and out is not None:
        raise typer.BadParameter(
            "table is for the terminal: use --format csv, json or parquet with -o",
            param_hint="-o",
        )
    selection = _selection(
        job=job,
        component=component,
        name=name,
        run=run,
        since=since,
        until=until,
        tag=tag,
        filter_=filter_,
        attempts=attempts,
        agg=agg,
        every=every,
        by=by,
    )
    if fmt is MetricsFormat.table and limit is None:
        limit = TABLE_ROWS
    with open_store(database_url) as store, handle_errors():
        if selection.aggregated:
            _query_aggregated(store, selection, fmt, out, limit)
        else:
            _query_points(store, selection, fmt, out, limit)


def _query_points(
    store: MetadataStore,
    selection: Selection,
    fmt: MetricsFormat,
    out: Path | None,
    limit: int | None,
) -> None:
    from etl_meta.analytics import metrics_frame

    total = count_points(store, selection.filters)
    if total == 0:
        _say_nothing(fmt)
        return
    if fmt is MetricsFormat.table:
        assert limit is not None
        frame = metrics_frame(store, limit=limit, **selection.filters)
        shown = frame[list(_POINT_TABLE)].rename(columns=_POINT_TABLE)
        _print_frame("metric points", shown, ("value", "attempt", "step"), more=total - len(frame))
        return
    wanted = total if limit is None else min(total, limit)
    written = _write(fmt, out, _pages(store, selection.filters, limit), wanted)
    _report(out, written)


def _query_aggregated(
    store: MetadataStore,
    selection: Selection,
    fmt: MetricsFormat,
    out: Path | None,
    limit: int | None,
) -> None:
    from etl_meta.analytics import aggregate_metrics

    frame = aggregate_metrics(
        store,
        every=selection.every,  # type: ignore[arg-type]
        by=selection.by,
        aggregates=selection.aggregates,
        **selection.filters,
    )
    if frame.empty:
        _say_nothing(fmt)
        return
    total = len(frame)
    if limit is not None:
        frame = frame.head(limit)
    if fmt is MetricsFormat.table:
        per = f" per {_EVERY_WORDS[selection.every]}" if selection.every else ""
        _print_frame(f"metrics{per}", frame, selection.aggregates, more=total - len(frame))
        return
    written = _write(fmt, out, iter([frame]), len(frame))
    _report(out, written)


def _write(fmt: MetricsFormat, out: Path | None, frames: Iterator[pd.DataFrame], total: int) -> int:
    try:
        return _export(fmt, out, frames, total)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {out or 'stdout'}: ", end="")
        err_console.print(exc.strerror or str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from None


def _say_nothing(fmt: MetricsFormat) -> None:
    # Exports keep stdout for data: the note goes to stderr, and no file is written.
    (console if fmt is MetricsFormat.table else err_console).print(NOTHING, highlight=False)


def _report(out: Path | None, written: int) -> None:
    if out is not None:
        err_console.print(f"wrote {written} rows to {out}", highlight=False, markup=False)


# --- plot --------------------------------------------------------------------------------------


def _series(
    frame: pd.DataFrame, aggregates: Sequence[str], by: Sequence[str]
) -> tuple[str, list[str], list[tuple[str, str]]]:
    """The x column, the key columns of a series, and ``(y column, label suffix)`` pairs."""
    if not aggregates:
        return "recorded_at", list(GROUPS), [("value", "")]
    suffixes = [(a, f" {a}" if len(aggregates) > 1 else "") for a in aggregates]
    return "bucket", list(by), suffixes


def build_figure(
    frame: pd.DataFrame,
    *,
    aggregates: Sequence[str] = (),
    by: Sequence[str] = GROUPS,
    title: str = "metrics",
) -> Figure:
    """A time-series chart of ``frame``: one line per series (and aggregate).

    ``frame`` is :func:`~etl_meta.analytics.metrics_frame`'s (x = ``recorded_at``, y = ``value``,
    a series per job/component/name) or, with ``aggregates``, :func:`aggregate_metrics`'s
    (x = ``bucket``, y = each aggregate, a series per ``by`` group). The job is left out of the
    labels when there is only one. Raises :class:`ValidationError` beyond :data:`MAX_SERIES`
    lines.
    """
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, keys, ys = _series(frame, aggregates, by)
    if x not in frame.columns:
        raise ValidationError.single("every", "a chart needs time buckets: use 1h, 1d or 1w")
    labelled = [k for k in keys if not (k == "job" and frame[k].nunique() <= 1 and len(keys) > 1)]
    groups = list(frame.groupby(keys, observed=True, sort=True)) if keys else [((), frame)]
    lines = len(groups) * len(ys)
    if lines > MAX_SERIES:
        raise ValidationError.single(
            "series",
            f"{lines} lines make an unreadable chart (at most {MAX_SERIES}): "
            "narrow it with --job, --component or --name, or --by job",
        )

    figure = Figure(figsize=(10, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for key, points in groups:
        values = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        base = " / ".join(str(values[k]) for k in labelled) or "all"
        points = points.sort_values(x)
        times = points[x].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        for column, suffix in ys:
            ax.plot(
                times,
                points[column].to_numpy(dtype=float),
                label=base + suffix,
                marker="o" if len(points) <= 60 else None,
                markersize=3,
                linewidth=1.4,
            )

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.ticklabel_format(axis="y", useOffset=False)  # "+1e6" above the ticks misleads
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(_ylabel(frame, aggregates))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if lines > 8:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:  # "best" searches every point for a free corner: only affordable on small charts
        ax.legend(loc="best" if len(frame) <= 10_000 else "upper left", fontsize="small")
    return figure


def _ylabel(frame: pd.DataFrame, aggregates: Sequence[str]) -> str:
    names = frame["name"].unique() if "name" in frame.columns else []
    what = str(names[0]) if len(names) == 1 else "value"
    if len(aggregates) == 1:
        return f"{aggregates[0]} of {what}"
    return what


def _title(selection: Selection) -> str:
    text = " · ".join(selection.described) or "all metrics"
    return text if len(text) <= 110 else text[:109] + "…"


@app.command(
    "plot",
    help="Draw metric points, or --agg aggregates per --every bucket, over time to PNG or SVG.\n\n"
    "One line per component/name (and job, when several match); with --agg, one line per --by "
    "group and aggregate. The x axis is UTC. The file type follows -o's extension.",
)
def plot(
    out: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="chart.png or chart.svg.")
    ],
    job: JobOption = None,
    component: ComponentOption = None,
    name: NameOption = None,
    run: RunOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    tag: TagOption = None,
    filter_: FilterOption = None,
    attempts: AttemptsOption = AttemptsChoice.final,
    agg: AggOption = None,
    every: EveryOption = None,
    by: ByOption = None,
    title: Annotated[
        str | None, typer.Option(help="Chart title (default: made from the filters).")
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Chart metric points or aggregates over time (help text in the decorator)."""
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise typer.BadParameter(
            f"{out.name}: the chart is written as PNG or SVG; name it .png or .svg",
            param_hint="-o",
        )
    selection = _selection(
        job=job,
        component=component,
        name=name,
        run=run,
        since=since,
        until=until,
        tag=tag,
        filter_=filter_,
        attempts=attempts,
        agg=agg,
        every=every,
        by=by,
    )
    if selection.aggregated and selection.every is None:
        raise typer.BadParameter(
            "a chart needs a time axis: use 1h, 1d or 1w", param_hint="--every"
        )
    with open_store(database_url) as store, handle_errors():
        frame = _plot_frame(store, selection)
        if frame is None:
            return
        figure = build_figure(
            frame,
            aggregates=selection.aggregates,
            by=selection.by,
            title=title or _title(selection),
        )
    lines = len(figure.axes[0].get_lines())
    try:
        _save(figure, out, kind)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {out}: ", end="")
        err_console.print(exc.strerror or str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from None
    noun = "line" if lines == 1 else "lines"
    console.print(f"wrote {out} ({lines} {noun})", highlight=False, markup=False)


def _plot_frame(store: MetadataStore, selection: Selection) -> pd.DataFrame | None:
    from etl_meta.analytics import aggregate_metrics, metrics_frame

    if selection.aggregated:
        frame = aggregate_metrics(
            store,
            every=selection.every,  # type: ignore[arg-type]
            by=selection.by,
            aggregates=selection.aggregates,
            **selection.filters,
        )
    else:
        total = count_points(store, selection.filters)
        if total > MAX_PLOT_POINTS:
            raise ValidationError.single(
                "points",
                f"{total} points are too many to draw (at most {MAX_PLOT_POINTS}): "
                "aggregate them, e.g. --agg mean --every 1h",
            )
        frame = metrics_frame(store, **selection.filters) if total else None
    if frame is None or frame.empty:
        console.print(NOTHING, highlight=False)
        return None
    return frame


def _save(figure: Figure, out: Path, kind: str) -> None:
    import matplotlib

    partial = out.with_name(out.name + ".partial")
    # SVG keeps text as text (searchable, accessible) and carries no date, so it is reproducible.
    metadata = {"Date": None} if kind == "svg" else {"Software": "etl-meta"}
    try:
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "etl-meta"}):
            figure.savefig(partial, format=kind, metadata=metadata)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
