"""The statements behind the metric frames, one per query shape (see :mod:`._compiled`).

``metrics_query``, ``aggregate_query`` and ``latest_query`` return the statement the matching
frame function runs, with the call's values bound, so ``EXPLAIN`` shows exactly what the API
runs. The frame functions take the ``*_shaped`` forms instead, which reuse a statement compiled
for the same shape and bind only the values.

Aggregates are computed by the database on both backends. PostgreSQL has ``percentile_cont``;
SQLite has no percentile function, so percentiles there use window functions that compute the
same thing — linear interpolation between the two closest ranks, ``v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1]
− v[⌊h⌋])`` with ``h = (n − 1)·p`` over the values in order — so both backends agree exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from etl_meta.analytics._compiled import Shaped, param
from etl_meta.analytics._select import (
    Attempts,
    MetricShape,
    execution,
    metric,
    metric_conditions,
    metric_from,
    metric_latest,
    metric_shape,
    table_of,
)
from etl_meta.analytics._select import component as component_table
from etl_meta.analytics._select import job as job_table
from etl_meta.errors import ValidationError
from etl_meta.models import MetricSeries
from etl_meta.store import MetadataStore

Every = Literal["1h", "1d", "1w"]
AGGREGATES = ("count", "mean", "min", "max", "last", "p50", "p95")  # the default set
GROUPS = ("job", "component", "name")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
#: A page of at most this many points is read like a small result (see :mod:`.fetch`); larger
#: pages and whole frames are read through Arrow.
SMALL_PAGE = 5_000
#: ``latest_metrics`` of at most this many runs is read like a small result.
SMALL_RUNS = 200


def metrics_shaped(
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
    unordered: bool = False,
) -> Shaped:
    """The shape and values of a :func:`~etl_meta.analytics.metrics_frame` call.

    ``unordered=True`` lets a large unpaginated read drop ``ORDER BY``; the frame is then
    sorted by id after the fetch (``Shaped.sort_by``), so the result is the same.
    """
    values: dict[str, Any] = {}
    shape = metric_shape(
        values,
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
        values["after_id"] = after_id
    if limit is not None:
        values["limit"] = limit
    after, limited = after_id is not None, limit is not None
    small = shape.run or (limit is not None and limit <= SMALL_PAGE)
    # A whole frame is read unordered and sorted by id afterwards (see fetch.read_frame):
    # PostgreSQL sorting a million rows spilled to disk with the default work_mem, and the rows
    # usually arrive in id order anyway. Pages keep ORDER BY, which their LIMIT needs.
    ordered = not unordered or small or after or limited
    ids = None  # only a whole frame reads its points with ids (see _metric_ids_statement)
    if not ordered:
        ids = Shaped(("metric ids", shape), lambda: _metric_ids_statement(shape), values, small)
    return Shaped(
        ("metrics", shape, after, limited, ordered),
        lambda: _metrics_statement(shape, after, limited, ordered),
        values,
        small,
        sort_by=None if ordered else "metric_id",
        ids=ids,
    )


def metrics_query(store: MetadataStore, **filters: Any) -> sa.Select:
    """The statement :func:`~etl_meta.analytics.metrics_frame` runs, values bound.

    Columns as :data:`~etl_meta.analytics.metrics.METRIC_COLUMNS`, oldest first (by id).
    """
    return metrics_shaped(store, **filters).statement()


def _metrics_statement(
    shape: MetricShape, after: bool, limited: bool, ordered: bool = True
) -> sa.Select:
    clauses = metric_conditions(shape)
    if after:
        clauses.append(metric.c.id > param("after_id", metric.c.id.type))
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
    )
    if ordered:
        query = query.order_by(metric.c.id)
    if limited:
        query = query.limit(param("limit", sa.Integer()))
    return query


def count_shaped(store: MetadataStore, *, run: str | int | None = None, **filters: Any) -> Shaped:
    """The shape and values of a :func:`~etl_meta.analytics.metric_count` call."""
    values: dict[str, Any] = {}
    shape = _shape_of(store, values, run, filters)
    return Shaped(("count", shape), lambda: _count_statement(shape), values, small=True)


def _count_statement(shape: MetricShape) -> sa.Select:
    """The number of points of ``shape``. For final attempts: all of them less those of an
    attempt a later one superseded, which are found from the few retried steps (the partial
    index of ``metric_latest``). Counting the final points directly checks every point for a
    later attempt, several times the work of counting all of them
    (``benchmarks/final_attempts.py``).
    """
    every = dataclasses.replace(shape, attempts="all")
    joined = metric_from(with_execution=shape.filter is not None)
    clauses = metric_conditions(every)
    counted = sa.select(sa.func.count()).select_from(joined).where(*clauses)
    if shape.attempts == "all":
        return counted
    retried = (
        sa.select(
            metric_latest.c.execution_id,
            metric_latest.c.component_id,
            sa.func.max(metric_latest.c.attempt).label("last"),
        )
        .where(metric_latest.c.attempt > 1)
        .group_by(metric_latest.c.execution_id, metric_latest.c.component_id)
        .subquery("retried")
    )
    superseded = joined.join(
        retried,
        sa.and_(
            retried.c.execution_id == metric.c.execution_id,
            retried.c.component_id == metric.c.component_id,
            metric.c.attempt < retried.c.last,
        ),
    )
    less = sa.select(sa.func.count()).select_from(superseded).where(*clauses)
    return sa.select((counted.scalar_subquery() - less.scalar_subquery()).label("count"))


def _shape_of(
    store: MetadataStore, values: dict[str, Any], run: str | int | None, filters: dict[str, Any]
) -> MetricShape:
    """The shape of ``metrics_frame``'s filters (``job``, ``component``, ``name`` by their
    public names), their values put into ``values``."""
    return metric_shape(
        values,
        job_name=filters.pop("job", None),
        component_name=filters.pop("component", None),
        name=filters.pop("name", None),
        execution_id=_run_id(store, run),
        **filters,
    )


def _metric_ids_statement(shape: MetricShape) -> sa.Select:
    """A whole frame's points with run and component ids instead of their names, unordered
    (PostgreSQL only: see ``_arrow.read_points_named``).

    The job, component and tag filters pick series, so they become
    ``series_id = ANY(ARRAY(SELECT metric_series.id …))``, each partition's key condition.
    As a join, PostgreSQL costs the partitioned points as a probe of every partition and
    hash-joins every point instead (a frame of 200,000 of 1e8 points: 6.7 s, against about
    1 s). A ``filter=`` expression may name any field, so it keeps the joins.
    """
    columns = (
        metric.c.id,
        metric.c.execution_id,
        metric.c.component_id,
        metric.c.name,
        metric.c.attempt,
        metric.c.step,
        metric.c.value,
        metric.c.recorded_at,
    )
    if shape.filter is not None:
        joined = metric_from(with_execution=True)
        return sa.select(*columns).select_from(joined).where(*metric_conditions(shape))
    by_component = dataclasses.replace(shape, job=None, component=None, tags=())
    clauses = metric_conditions(by_component)
    if by_component != shape:
        picked = MetricShape(
            job=shape.job, component=shape.component, tags=shape.tags, attempts="all"
        )
        series = table_of(MetricSeries)
        picked_series = (
            sa.select(series.c.id)
            .join(component_table, component_table.c.id == series.c.component_id)
            .join(job_table, job_table.c.id == component_table.c.job_id)
            .where(*metric_conditions(picked))
        )
        series_ids = sa.func.array(
            picked_series.scalar_subquery(), type_=postgresql.ARRAY(sa.BigInteger)
        )
        clauses.append(metric.c.series_id == sa.any_(series_ids))
    return sa.select(*columns).select_from(metric).where(*clauses)


def _run_id(store: MetadataStore, run: str | int | None) -> int | None:
    if run is None:
        return None
    if isinstance(run, int) and not isinstance(run, bool):
        return run  # the store's own id: no lookup needed
    return store.executions.resolve(run).id


def aggregate_shaped(
    store: MetadataStore,
    *,
    every: Every | None = "1d",
    by: Sequence[str] = GROUPS,
    aggregates: Sequence[str] = AGGREGATES,
    **filters: Any,
) -> Shaped:
    """The shape and values of an :func:`~etl_meta.analytics.aggregate_metrics` call."""
    unknown = [a for a in aggregates if a not in (*AGGREGATES, *PERCENTILES)]
    bad_groups = [g for g in by if g not in GROUPS]
    if unknown:
        raise ValidationError.single("aggregates", f"unknown: {', '.join(unknown)}")
    if bad_groups:
        raise ValidationError.single("by", f"unknown: {', '.join(bad_groups)}; use {GROUPS}")
    if every is not None and every not in ("1h", "1d", "1w"):
        raise ValidationError.single("every", "must be 1h, 1d or 1w")
    values: dict[str, Any] = {}
    shape = _shape_of(store, values, filters.pop("run", None), filters)
    dialect, by, aggregates = store.dialect, tuple(by), tuple(aggregates)
    # One metric of one job, component or run: a few rows per bucket. Anything wider may have
    # as many groups as points, and is read through Arrow.
    small = shape.name is not None and (
        shape.run or shape.job is not None or shape.component is not None
    )
    return Shaped(
        ("aggregate", dialect, shape, every, by, aggregates),
        lambda: _aggregate_statement(dialect, shape, every, by, aggregates),
        values,
        small,
    )


def aggregate_query(store: MetadataStore, **arguments: Any) -> sa.Select:
    """The statement :func:`~etl_meta.analytics.aggregate_metrics` runs, values bound:
    ``bucket``, the ``by`` columns, the aggregates."""
    return aggregate_shaped(store, **arguments).statement()


def _bucket(dialect: str, every: Every | None) -> Any:
    recorded = metric.c.recorded_at
    if every is None:
        return None
    unit = {"1h": "hour", "1d": "day", "1w": "week"}[every]
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


def _aggregate_statement(
    dialect: str,
    shape: MetricShape,
    every: Every | None,
    by: Sequence[str],
    aggregates: Sequence[str],
) -> sa.Select:
    bucket = _bucket(dialect, every)
    names = {"job": job_table.c.name, "component": component_table.c.name, "name": metric.c.name}
    keys = ([bucket.label("bucket")] if bucket is not None else []) + [
        names[g].label(g) for g in by
    ]
    base = (
        sa.select(*keys, metric.c.id, metric.c.value, metric.c.recorded_at)
        # A filter may name run fields, which need the execution join.
        .select_from(metric_from(with_execution=shape.filter is not None))
        .where(*metric_conditions(shape))
        .subquery("points")
    )
    group = [base.c[k.name] for k in keys]
    if dialect == "postgresql":
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
        **{p: sa.func.percentile_cont(q).within_group(value) for p, q in PERCENTILES.items()},
    }
    labelled = (exprs[a].label(a) for a in aggregates)
    return sa.select(*group, *labelled).group_by(*group).order_by(*group)


def _aggregate_sqlite(base: Any, group: list[Any], aggregates: Sequence[str]) -> sa.Select:
    partition = group or [sa.literal(1)]
    # Each window is a sort of every point: compute only the ones the aggregates need.
    windows = []
    if any(a in PERCENTILES for a in aggregates):
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
    exprs.update({p: percentile(q) for p, q in PERCENTILES.items() if p in aggregates})
    if "last" in aggregates:
        exprs["last"] = sa.func.max(ranked.c.last_value)
    labelled = (exprs[a].label(a) for a in aggregates)
    return sa.select(*keys, *labelled).group_by(*keys).order_by(*keys)


def latest_shaped(job_name: str, *, runs: int = 10) -> Shaped:
    """The shape and values of a :func:`~etl_meta.analytics.latest_metrics` call.

    The job is matched by name in the statement itself (as one would write it by hand), not
    looked up first: an unknown job gives no rows, and the caller then tells it apart from a
    job without runs.
    """
    values = {"job": job_name, "runs": runs}
    # A run has one row per component and metric name: tens to hundreds.
    return Shaped(("latest",), _latest_statement, values, small=runs <= SMALL_RUNS)


def latest_query(store: MetadataStore, job_name: str, *, runs: int = 10) -> sa.Select:
    """The statement :func:`~etl_meta.analytics.latest_metrics` runs, values bound."""
    store.jobs.get(job_name)  # NotFoundError for an unknown job, as latest_metrics raises
    return latest_shaped(job_name, runs=runs).statement()


def _latest_statement() -> sa.Select:
    recent = (
        sa.select(
            execution.c.id, execution.c.external_run_id, execution.c.started_at, execution.c.status
        )
        .select_from(execution.join(job_table, job_table.c.id == execution.c.job_id))
        .where(job_table.c.name == param("job", job_table.c.name.type))
        .order_by(execution.c.id.desc())
        .limit(param("runs", sa.Integer()))
        .subquery("recent")
    )
    latest, component = metric_latest, component_table
    return (
        sa.select(
            recent.c.id,
            recent.c.external_run_id,
            recent.c.started_at,
            recent.c.status,
            component.c.name,
            latest.c.name,
            latest.c.attempt,
            latest.c.step,
            latest.c.value,
            latest.c.recorded_at,
        )
        .select_from(
            recent.join(latest, latest.c.execution_id == recent.c.id).join(
                component, component.c.id == latest.c.component_id
            )
        )
        .order_by(recent.c.id.desc(), component.c.name, latest.c.name)
    )
