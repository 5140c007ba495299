"""The selections every analyst query starts from, and the fields filters may name.

Metric rows are joined with their component, execution and job names once here; runs with their
job. Every filter argument becomes a WHERE clause on indexed columns where one exists
(``metric.execution_id`` for one run, ``metric(component_id, name, recorded_at)`` for one metric
of one job over time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from etl_meta.analytics._compiled import param
from etl_meta.errors import ValidationError
from etl_meta.filters import FieldSpec, filter_clause
from etl_meta.filters.sql import ValuePredicate
from etl_meta.models import (
    Component,
    Execution,
    ExecutionTag,
    Job,
    JobTag,
    MetricLatest,
    MetricName,
    Tag,
    metric_points,
)
from etl_meta.models.base import table_of

Attempts = Literal["all", "final"]


#: One row per point, with its series' keys and name (``etl_meta.models.metric_points``).
metric = metric_points
metric_name = table_of(MetricName)
component = table_of(Component)
execution = table_of(Execution)
job = table_of(Job)
metric_latest = table_of(MetricLatest)
tag = table_of(Tag)
job_tag = table_of(JobTag)
execution_tag = table_of(ExecutionTag)


def _job_tag(job_id: Any) -> Any:
    def condition(key: str, predicate: ValuePredicate | None) -> sa.ColumnElement[bool]:
        found = (
            sa.select(job_tag.c.job_id)
            .join(tag, tag.c.id == job_tag.c.tag_id)
            .where(job_tag.c.job_id == job_id, tag.c.key == key)
        )
        if predicate is not None:
            found = found.where(predicate(tag.c.value))
        return found.exists()

    return condition


def _run_tag(execution_id: Any) -> Any:
    def condition(key: str, predicate: ValuePredicate | None) -> sa.ColumnElement[bool]:
        # One probe of the run's primary key (execution_id, key) per run.
        found = sa.select(execution_tag.c.execution_id).where(
            execution_tag.c.execution_id == execution_id, execution_tag.c.key == key
        )
        if predicate is not None:
            found = found.where(predicate(execution_tag.c.value))
        return found.exists()

    return condition


#: Fields of metric filters (``etl-meta metrics query --filter``).
METRIC_FIELDS: Mapping[str, FieldSpec] = {
    "job": FieldSpec(job.c.name),
    "component": FieldSpec(component.c.name),
    "name": FieldSpec(metric.c.name),
    "value": FieldSpec(metric.c.value, "number"),
    "attempt": FieldSpec(metric.c.attempt, "number"),
    "step": FieldSpec(metric.c.step, "number"),
    "recorded_at": FieldSpec(metric.c.recorded_at, "timestamp"),
    "run": FieldSpec(execution.c.external_run_id),
    "status": FieldSpec(execution.c.status),
    "orchestrator": FieldSpec(execution.c.orchestrator),
    "tag": FieldSpec(tag_condition=_job_tag(job.c.id)),
    "run_tag": FieldSpec(tag_condition=_run_tag(execution.c.id)),
}

#: Fields of run filters (``etl-meta runs list --filter`` and the run history API).
RUN_FIELDS: Mapping[str, FieldSpec] = {
    "job": FieldSpec(job.c.name),
    "run": FieldSpec(execution.c.external_run_id),
    "status": FieldSpec(execution.c.status),
    "orchestrator": FieldSpec(execution.c.orchestrator),
    "started_at": FieldSpec(execution.c.started_at, "timestamp"),
    "ended_at": FieldSpec(execution.c.ended_at, "timestamp"),
    "job_revision": FieldSpec(execution.c.job_revision, "number"),
    "tag": FieldSpec(tag_condition=_job_tag(job.c.id)),
    "run_tag": FieldSpec(tag_condition=_run_tag(execution.c.id)),
}


def tag_clauses(tags: Mapping[str, Any] | None) -> list[sa.ColumnElement[bool]]:
    """``tags={"env": "prod"}``: the job carries every given ``key=value``.

    A value may be a bound parameter (the cached statements bind tag values per call).
    """
    condition = _job_tag(job.c.id)
    return [
        condition(key, lambda column, v=value: column == v) for key, value in (tags or {}).items()
    ]


@dataclass(frozen=True)
class MetricShape:
    """Which metric filters a call gives, without their values: it decides the SQL.

    A name filter is ``None`` (not given), ``"="`` (one name) or the length of a list of names.
    The values are bound parameters named after the filter (``job``, ``job_0``, ``since``,
    ``tag_0`` …); the tag keys and the ``filter`` text are part of the shape itself.
    """

    job: str | int | None = None
    component: str | int | None = None
    name: str | int | None = None
    run: bool = False
    since: bool = False
    until: bool = False
    tags: tuple[str, ...] = ()
    attempts: Attempts = "final"
    filter: str | None = None


def metric_shape(
    values: dict[str, Any],
    *,
    job_name: str | Iterable[str] | None = None,
    component_name: str | Iterable[str] | None = None,
    name: str | Iterable[str] | None = None,
    execution_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    attempts: Attempts = "final",
    filter: str | None = None,
) -> MetricShape:
    """Validate metric filters, put their values into ``values`` and return their shape."""
    if attempts not in ("all", "final"):
        raise ValidationError.single("attempts", "must be 'all' or 'final'")
    for label, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise ValidationError.single(label, "must be timezone-aware")
    given: tuple[tuple[str, int | datetime | None], ...] = (
        ("run", execution_id),
        ("since", since),
        ("until", until),
    )
    for label, given_value in given:
        if given_value is not None:
            values[label] = given_value
    tag_items = list((tags or {}).items())
    for index, (_, value) in enumerate(tag_items):
        values[f"tag_{index}"] = value
    return MetricShape(
        job=_names("job", job_name, values),
        component=_names("component", component_name, values),
        name=_names("name", name, values),
        run=execution_id is not None,
        since=since is not None,
        until=until is not None,
        tags=tuple(key for key, _ in tag_items),
        attempts=attempts,
        filter=filter or None,
    )


def _names(
    slot: str, value: str | Iterable[str] | None, values: dict[str, Any]
) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, str):
        values[slot] = value
        return "="
    items = list(value)
    values.update({f"{slot}_{index}": item for index, item in enumerate(items)})
    return len(items)


def _match(column: Any, slot: str, shape: str | int | None) -> sa.ColumnElement[bool] | None:
    if shape is None:
        return None
    if shape == "=":
        return column == param(slot, column.type)
    if shape == 0:
        return sa.false()  # an empty list matches nothing
    return column.in_([param(f"{slot}_{index}", column.type) for index in range(int(shape))])


def _name_match(shape: str | int | None) -> sa.ColumnElement[bool] | None:
    """Names as their dictionary ids: each looked up once, so the series index
    ``(component_id, name_id, …)`` gets the name too, not only the component."""
    if shape is None:
        return None
    if shape == 0:
        return sa.false()
    slots = ["name"] if shape == "=" else [f"name_{index}" for index in range(int(shape))]
    text = metric_name.c.name.type
    ids = [
        sa.select(metric_name.c.id).where(metric_name.c.name == param(slot, text)).scalar_subquery()
        for slot in slots
    ]
    return sa.or_(*(metric.c.name_id == found for found in ids))


def metric_conditions(shape: MetricShape) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses over ``metric`` ⋈ ``component`` ⋈ ``execution`` ⋈ ``job``, unbound."""
    clauses = [
        clause
        for clause in (
            _match(job.c.name, "job", shape.job),
            _match(component.c.name, "component", shape.component),
            _name_match(shape.name),
        )
        if clause is not None
    ]
    if shape.run:
        clauses.append(metric.c.execution_id == param("run", metric.c.execution_id.type))
    if shape.since:
        clauses.append(metric.c.recorded_at >= param("since", metric.c.recorded_at.type))
    if shape.until:
        clauses.append(metric.c.recorded_at < param("until", metric.c.recorded_at.type))
    tag_type = tag.c.value.type
    tag_values = {key: param(f"tag_{i}", tag_type) for i, key in enumerate(shape.tags)}
    clauses += tag_clauses(tag_values)
    if shape.attempts == "final":
        clauses.append(final_attempt())
    if shape.filter:
        clauses.append(filter_clause(shape.filter, METRIC_FIELDS))
    return clauses


def final_attempt() -> sa.ColumnElement[bool]:
    """This row's attempt is the last of its step that recorded metrics: no later attempt of
    the step has a ``metric_latest`` row.

    Written as an anti-join, not ``attempt = (SELECT max(attempt) …)``: PostgreSQL estimates
    such an equality to keep almost no rows, and planned counts, pages and exports of a large
    store as nested loops (``benchmarks/final_attempts.py``). The redundant ``attempt > 1``
    leaves only retried steps on the inner side and matches the partial index
    ``ix_metric_latest_retried`` (migration 0010).
    """
    later = metric_latest.alias("later_attempt")
    return ~(
        sa.exists().where(
            later.c.execution_id == metric.c.execution_id,
            later.c.component_id == metric.c.component_id,
            later.c.attempt > 1,
            later.c.attempt > metric.c.attempt,
        )
    )


def metric_from(*, with_execution: bool = True) -> Any:
    """``metric`` joined with the names analysts filter and group by.

    The job is reached through the component (a run's components belong to its job), so the
    planner can go job → its components → ``metric(component_id, name, recorded_at)``. The
    execution is joined only when run columns are returned or may be filtered on: joining it
    for nothing made PostgreSQL misestimate and probe the wrong index
    (``benchmarks/analytics_queries.py``, query (b)).
    """
    joined = metric.join(component, component.c.id == metric.c.component_id).join(
        job, job.c.id == component.c.job_id
    )
    if with_execution:
        joined = joined.join(execution, execution.c.id == metric.c.execution_id)
    return joined
