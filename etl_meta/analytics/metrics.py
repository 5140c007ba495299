"""Metric points as DataFrames: long format, aggregated in the database, latest values.

Aggregates are computed by the database on both backends. PostgreSQL has ``percentile_cont``;
SQLite has no percentile function, so percentiles there use window functions that compute the
same thing — linear interpolation between the two closest ranks, ``v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1]
− v[⌊h⌋])`` with ``h = (n − 1)·p`` over the values in order — so both backends agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from etl_meta.analytics._select import (
    Attempts,
    execution,
    metric,
    metric_conditions,
    metric_from,
    metric_latest,
)
from etl_meta.analytics._select import component as component_table
from etl_meta.analytics._select import job as job_table
from etl_meta.analytics.fetch import Kind, read_frame
from etl_meta.errors import ValidationError
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

Every = Literal["1h", "1d", "1w"]
AGGREGATES = ("count", "mean", "min", "max", "last", "p50", "p95")  # the default set
GROUPS = ("job", "component", "name")
_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

METRIC_COLUMNS: Mapping[str, Kind] = {
    "metric_id": "int",
    "run_id": "int",
    "external_run_id": "text",
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
    query = metrics_query(
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
    )
    return read_frame(store, query, METRIC_COLUMNS)


def metrics_query(
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
) -> sa.Select:
    """The statement :func:`metrics_frame` runs (columns as :data:`METRIC_COLUMNS`)."""
    clauses = metric_conditions(
        job_name=job,
        component_name=component,
        name=name,
        execution_id=_run_id(store, run),
        since=since,
        until=until,
        tags=tags,
        attempts=attempts,
        filter=filter,
    )
    if after_id is not None:
        clauses.append(metric.c.id > after_id)
    query = (
        sa.select(
            metric.c.id,
            metric.c.execution_id,
            execution.c.external_run_id,
            execution.c.orchestrator,
            job_table.c.name,
            component_table.c.name,
            metric.c.name,
            metric.c.attempt,
            metric.c.step,
            metric.c.value,
            metric.c.recorded_at,
        )
        .select_from(metric_from())
        .where(*clauses)
        .order_by(metric.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return query


def _run_id(store: MetadataStore, run: str | int | None) -> int | None:
    if run is None:
        return None
    if isinstance(run, int) and not isinstance(run, bool):
        return run  # the store's own id: no lookup needed
    return store.executions.resolve(run).id


def _bucket(dialect: str, every: Every | None) -> Any:
    recorded = metric.c.recorded_at
    if every is None:
        return None
    unit = {"1h": "hour", "1d": "day", "1w": "week"}.get(every)
    if unit is None:
        raise ValidationError.single("every", "must be 1h, 1d or 1w")
    if dialect == "postgresql":
        # date_trunc follows the session time zone: truncate the UTC wall clock explicitly.
        utc = sa.func.timezone("UTC", recorded)
        return sa.func.timezone("UTC", sa.func.date_trunc(unit, utc))
    text = sa.type_coerce(recorded, sa.String)  # stored as "YYYY-MM-DD HH:MM:SS.ffffff" UTC
    if unit == "hour":
        return sa.func.substr(text, 1, 13) + ":00:00.000000"
    if unit == "day":
        return sa.func.substr(text, 1, 10) + " 00:00:00.000000"
    # ISO weeks start on Monday: to the next Sunday (or stay), then back six days.
    return sa.func.date(sa.func.substr(text, 1, 10), "weekday 0", "-6 days") + " 00:00:00.000000"


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
    query = aggregate_query(store, every=every, by=by, aggregates=aggregates, **filters)
    columns: dict[str, Kind] = {}
    if every is not None:
        columns["bucket"] = "timestamp"
    columns.update({g: "category" for g in by})
    columns.update({a: ("int" if a == "count" else "float") for a in aggregates})
    return read_frame(store, query, columns)


def aggregate_query(
    store: MetadataStore,
    *,
    every: Every | None = "1d",
    by: Sequence[str] = GROUPS,
    aggregates: Sequence[str] = AGGREGATES,
    **filters: Any,
) -> sa.Select:
    """The statement :func:`aggregate_metrics` runs: ``bucket``, the ``by`` columns, aggregates."""
    unknown = [a for a in aggregates if a not in (*AGGREGATES, *_PERCENTILES)]
    bad_groups = [g for g in by if g not in GROUPS]
    if unknown:
        raise ValidationError.single("aggregates", f"unknown: {', '.join(unknown)}")
    if bad_groups:
        raise ValidationError.single("by", f"unknown: {', '.join(bad_groups)}; use {GROUPS}")
    run = filters.pop("run", None)
    filter_text = filters.get("filter")  # may name run fields, which need the execution join
    clauses = metric_conditions(
        job_name=filters.pop("job", None),
        component_name=filters.pop("component", None),
        name=filters.pop("name", None),
        execution_id=_run_id(store, run),
        **filters,
    )
    bucket = _bucket(store.dialect, every)
    names = {"job": job_table.c.name, "component": component_table.c.name, "name": metric.c.name}
    keys = ([bucket.label("bucket")] if bucket is not None else []) + [
        names[g].label(g) for g in by
    ]
    base = (
        sa.select(*keys, metric.c.id, metric.c.value, metric.c.recorded_at)
        .select_from(metric_from(with_execution=filter_text is not None))
        .where(*clauses)
        .subquery("points")
    )
    group = [base.c[k.name] for k in keys]
    if store.dialect == "postgresql":
        return _aggregate_postgresql(base, group, aggregates)
    return _aggregate_sqlite(base, group, aggregates)


def _aggregate_postgresql(base: Any, group: list[Any], aggregates: Sequence[str]) -> sa.Select:
    value = base.c.value
    last = sa.type_coerce(
        sa.func.array_agg(
            postgresql.aggregate_order_by(value, base.c.recorded_at.desc(), base.c.id.desc())
        ),
        postgresql.ARRAY(sa.Double),
    )[1]
    exprs = {
        "count": sa.func.count(),
        "mean": sa.func.avg(value),
        "min": sa.func.min(value),
        "max": sa.func.max(value),
        "last": last,
        **{p: sa.func.percentile_cont(q).within_group(value) for p, q in _PERCENTILES.items()},
    }
    labelled = (exprs[a].label(a) for a in aggregates)
    return sa.select(*group, *labelled).group_by(*group).order_by(*group)


def _aggregate_sqlite(base: Any, group: list[Any], aggregates: Sequence[str]) -> sa.Select:
    partition = group or [sa.literal(1)]
    # Each window is a sort of every point: compute only the ones the aggregates need.
    windows = []
    if any(a in _PERCENTILES for a in aggregates):
        windows += [
            sa.func.row_number().over(partition_by=partition, order_by=base.c.value).label("rn"),
            sa.func.count().over(partition_by=partition).label("n"),
        ]
    if "last" in aggregates:
        windows.append(
            sa.func.first_value(base.c.value)
            .over(partition_by=partition, order_by=(base.c.recorded_at.desc(), base.c.id.desc()))
            .label("last_value")
        )
    ranked = sa.select(*group, base.c.value, *windows).subquery("ranked")
    keys = [ranked.c[c.name] for c in group]
    value = ranked.c.value

    def percentile(q: float) -> Any:
        rn, n = ranked.c.rn, ranked.c.n
        h = (n - 1) * q
        low = sa.cast(h, sa.Integer)  # ⌊h⌋ for h ≥ 0
        frac = h - low
        return sa.func.sum(
            sa.case(
                (rn == low + 1, value * (1 - frac)),
                (rn == low + 2, value * frac),
                else_=0.0,
            )
        )

    exprs = {
        "count": sa.func.count(),
        "mean": sa.func.avg(value),
        "min": sa.func.min(value),
        "max": sa.func.max(value),
    }
    exprs.update({p: percentile(q) for p, q in _PERCENTILES.items() if p in aggregates})
    if "last" in aggregates:
        exprs["last"] = sa.func.max(ranked.c.last_value)
    labelled = (exprs[a].label(a) for a in aggregates)
    return sa.select(*keys, *labelled).group_by(*keys).order_by(*keys)


LATEST_COLUMNS: Mapping[str, Kind] = {
    "run_id": "int",
    "external_run_id": "text",
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
    return read_frame(store, latest_query(store, job_name, runs=runs), LATEST_COLUMNS)


def latest_query(store: MetadataStore, job_name: str, *, runs: int = 10) -> sa.Select:
    """The statement :func:`latest_metrics` runs (columns as :data:`LATEST_COLUMNS`)."""
    job_id = store.jobs.get(job_name).id
    recent = (
        sa.select(
            execution.c.id, execution.c.external_run_id, execution.c.started_at, execution.c.status
        )
        .where(execution.c.job_id == job_id)
        .order_by(execution.c.id.desc())
        .limit(runs)
        .subquery("recent")
    )
    return (
        sa.select(
            recent.c.id,
            recent.c.external_run_id,
            recent.c.started_at,
            recent.c.status,
            component_table.c.name,
            metric_latest.c.name,
            metric_latest.c.attempt,
            metric_latest.c.step,
            metric_latest.c.value,
            metric_latest.c.recorded_at,
        )
        .select_from(
            recent.join(metric_latest, metric_latest.c.execution_id == recent.c.id).join(
                component_table, component_table.c.id == metric_latest.c.component_id
            )
        )
        .order_by(recent.c.id.desc(), component_table.c.name, metric_latest.c.name)
    )
