"""Metric points as DataFrames: long format, aggregated in the database, latest values.

The statements are built in :mod:`etl_meta.analytics.queries` (one per query shape, compiled
once) and read by :mod:`etl_meta.analytics.fetch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from etl_meta.analytics._select import Attempts
from etl_meta.analytics.fetch import Kind, read_batches, read_frame
from etl_meta.analytics.queries import (
    AGGREGATES,
    GROUPS,
    Every,
    aggregate_query,
    aggregate_shaped,
    count_shaped,
    latest_query,
    latest_shaped,
    metrics_query,
    metrics_shaped,
)
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "AGGREGATES",
    "LATEST_COLUMNS",
    "METRIC_COLUMNS",
    "aggregate_metrics",
    "aggregate_query",
    "latest_metrics",
    "latest_query",
    "metric_batches",
    "metric_count",
    "metrics_frame",
    "metrics_query",
]

METRIC_COLUMNS: Mapping[str, Kind] = {
    "metric_id": "int",
    "run_id": "int",
    # One value per run, repeated for each of its points: a categorical (codes and one string
    # per run, not a string per point).
    "external_run_id": "category",
    "orchestrator": "category",
    "job": "category",
    "component": "category",
    "name": "category",
    "attempt": "int",
    "step": "int",
    "value": "float",
    "recorded_at": "timestamp",
}


def metrics_frame(
    store: MetadataStore,
    *,
    job: str | Iterable[str] | None = None,
    component: str | Iterable[str] | None = None,
    name: str | Iterable[str] | None = None,
    run: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    attempts: Attempts = "final",
    filter: str | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Metric points in long format, oldest first (by id).

    ``run`` is the store's id or an orchestrator's run id. ``attempts="final"`` (the default)
    keeps only each step's last attempt, so retries are not counted twice. ``filter`` is an
    expression over the fields in :data:`etl_meta.analytics.METRIC_FIELDS`. ``after_id`` and
    ``limit`` page through the result (see :func:`etl_meta.analytics.metrics_page`).
    """
    shaped = metrics_shaped(
        store,
        job=job,
        component=component,
        name=name,
        run=run,
        since=since,
        until=until,
        tags=tags,
        attempts=attempts,
        filter=filter,
        after_id=after_id,
        limit=limit,
        unordered=True,
    )
    return read_frame(store, shaped, METRIC_COLUMNS)


def metric_count(store: MetadataStore, **filters: Any) -> int:
    """How many points :func:`metrics_frame` returns for the same ``filters``."""
    frame = read_frame(store, count_shaped(store, **filters), {"count": "int"})
    return int(frame["count"].iloc[0])


@contextmanager
def metric_batches(
    store: MetadataStore, *, limit: int | None = None, **filters: Any
) -> Iterator[Iterator[pa.Table]]:
    """Metric points as a stream of Arrow tables, oldest first (by id): what exports write.

    Filters as :func:`metrics_frame`; columns as :data:`METRIC_COLUMNS`, with names as plain
    strings, not categoricals. The tables are read from the database while the ``with`` block
    iterates them, so no table of every point is ever held::

        with analytics.metric_batches(store, job="daily_sales") as tables:
            for table in tables:
                writer.write_table(table)
    """
    shaped = metrics_shaped(store, limit=limit, **filters)
    with read_batches(store, shaped, METRIC_COLUMNS, export=True) as tables:
        yield tables


def aggregate_metrics(
    store: MetadataStore,
    *,
    every: Every | None = "1d",
    by: Sequence[str] = GROUPS,
    aggregates: Sequence[str] = AGGREGATES,
    **filters: Any,
) -> pd.DataFrame:
    """Aggregates per time bucket (UTC hour/day/ISO week) and per job/component/name.

    ``aggregates`` from ``count``, ``mean``, ``min``, ``max``, ``last`` (the value recorded
    last), ``p50``, ``p90``, ``p95``, ``p99``. ``filters`` are those of :func:`metrics_frame`.
    """
    shaped = aggregate_shaped(store, every=every, by=by, aggregates=aggregates, **filters)
    columns: dict[str, Kind] = {}
    if every is not None:
        columns["bucket"] = "timestamp"
    columns.update({g: "category" for g in by})
    columns.update({a: ("int" if a == "count" else "float") for a in aggregates})
    return read_frame(store, shaped, columns)


LATEST_COLUMNS: Mapping[str, Kind] = {
    "run_id": "int",
    "external_run_id": "category",  # one value per run, repeated for each of its metrics
    "started_at": "timestamp",
    "status": "category",
    "component": "category",
    "name": "category",
    "attempt": "int",
    "step": "int",
    "value": "float",
    "recorded_at": "timestamp",
}


def latest_metrics(store: MetadataStore, job_name: str, *, runs: int = 10) -> pd.DataFrame:
    """The latest value of every metric for the ``runs`` most recent runs of a job.

    Reads the ``metric_latest`` table the store maintains on write: a few rows per run.
    """
    frame = read_frame(store, latest_shaped(job_name, runs=runs), LATEST_COLUMNS)
    if frame.empty:
        store.jobs.get(job_name)  # NotFoundError for an unknown job; else it has no runs yet
    return frame
