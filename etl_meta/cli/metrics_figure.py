"""Charts for ``etl-meta metrics plot``: one line per series, built with matplotlib."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from etl_meta.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: More lines than this make an unreadable chart: the command asks for narrower filters.
MAX_SERIES = 20
GROUPS = ("job", "component", "name")


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
    names = list(frame["name"].unique()) if "name" in frame.columns else []
    what = str(names[0]) if len(names) == 1 else "value"
    if len(aggregates) == 1:
        return f"{aggregates[0]} of {what}"
    return what


def save_figure(figure: Figure, out: Path, kind: str) -> None:
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
