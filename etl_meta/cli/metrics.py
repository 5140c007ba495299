"""``etl-meta metrics``: query, export and plot metric points (the commands and their options).

Output and export live in :mod:`etl_meta.cli.metrics_output`, charts in
:mod:`etl_meta.cli.metrics_figure`.

``query`` prints a table for people or exports CSV, JSON or Parquet for programs, streaming
:func:`etl_meta.analytics.metric_batches` into the writer so an export never holds every point in
memory. ``plot`` draws a time-series chart with matplotlib. The filter options they share, and
what they select, are in :mod:`etl_meta.cli.metrics_selection`. pandas, pyarrow and matplotlib
are imported inside the commands, so the rest of the command line starts without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    open_store,
)
from etl_meta.cli.metrics_figure import build_figure, save_figure
from etl_meta.cli.metrics_output import (
    NOTHING,
    POINT_TABLE,
    MetricsFormat,
    print_frame,
    report_written,
    say_nothing,
    write_export,
)
from etl_meta.cli.metrics_selection import (
    EVERY_WORDS,
    AggOption,
    AttemptsChoice,
    AttemptsOption,
    ByOption,
    ComponentOption,
    EveryOption,
    FilterOption,
    JobOption,
    NameOption,
    RunOption,
    Selection,
    SinceOption,
    TagOption,
    UntilOption,
    selection_of,
)
from etl_meta.errors import ValidationError
from etl_meta.extras import require_extra
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(help="Query, export and plot metric points.", no_args_is_help=True)

#: Rows a table prints unless ``--limit`` says otherwise.
TABLE_ROWS = 50
#: Raw points a chart draws at most; beyond it, aggregate (``--agg mean --every 1h``).
MAX_PLOT_POINTS = 500_000


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
    require_extra("analytics", needed_by="etl-meta metrics query")
    if fmt is MetricsFormat.parquet and out is None:
        raise typer.BadParameter("parquet is binary: give a file with -o FILE", param_hint="-o")
    if fmt is MetricsFormat.table and out is not None:
        raise typer.BadParameter(
            "table is for the terminal: use --format csv, json or parquet with -o",
            param_hint="-o",
        )
    selection = selection_of(
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
    from etl_meta.analytics import metric_batches, metric_count, metrics_frame

    if fmt is MetricsFormat.table:
        assert limit is not None
        total = metric_count(store, **selection.filters)
        if total == 0:
            say_nothing(fmt, out)
            return
        frame = metrics_frame(store, limit=limit, **selection.filters)
        shown = frame[list(POINT_TABLE)].rename(columns=POINT_TABLE)
        print_frame("metric points", shown, ("value", "attempt", "step"), more=total - len(frame))
        return

    def wanted() -> int:
        total = metric_count(store, **selection.filters)
        return total if limit is None else min(total, limit)

    with metric_batches(store, limit=limit, **selection.filters) as tables:
        written = write_export(fmt, out, tables, wanted)
    if written == 0:
        say_nothing(fmt, out)
        return
    report_written(out, written)


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
        if fmt is not MetricsFormat.table:
            write_export(fmt, out, [], lambda: 0)  # JSON on stdout is still "[]"
        say_nothing(fmt, out)
        return
    total = len(frame)
    if limit is not None:
        frame = frame.head(limit)
    if fmt is MetricsFormat.table:
        per = f" per {EVERY_WORDS[selection.every]}" if selection.every else ""
        print_frame(f"metrics{per}", frame, selection.aggregates, more=total - len(frame))
        return
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    written = write_export(fmt, out, [table], lambda: len(frame))
    report_written(out, written)


# --- plot --------------------------------------------------------------------------------------


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
    require_extra("plot", needed_by="etl-meta metrics plot")
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise typer.BadParameter(
            f"{out.name}: the chart is written as PNG or SVG; name it .png or .svg",
            param_hint="-o",
        )
    selection = selection_of(
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
        save_figure(figure, out, kind)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {out}: ", end="")
        err_console.print(exc.strerror or str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from None
    noun = "line" if lines == 1 else "lines"
    console.print(f"wrote {out} ({lines} {noun})", highlight=False, markup=False)


def _plot_frame(store: MetadataStore, selection: Selection) -> pd.DataFrame | None:
    from etl_meta.analytics import aggregate_metrics, metric_count, metrics_frame

    frame: pd.DataFrame | None
    if selection.aggregated:
        frame = aggregate_metrics(
            store,
            every=selection.every,  # type: ignore[arg-type]
            by=selection.by,
            aggregates=selection.aggregates,
            **selection.filters,
        )
    else:
        total = metric_count(store, **selection.filters)
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
