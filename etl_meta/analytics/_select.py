"""The selections every analyst query starts from, and the fields filters may name.

Metric rows are joined with their component, execution and job names once here; runs with their
job. Every filter argument becomes a WHERE clause on indexed columns where one exists
(``metric.execution_id`` for one run, ``metric(component_id, name, recorded_at)`` for one metric
of one job over time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from etl_meta.analytics.filters_sql import FieldSpec, ValuePredicate, filter_clause
from etl_meta.errors import ValidationError
from etl_meta.models import Component, Execution, Job, JobTag, Metric, MetricLatest, Tag

Attempts = Literal["all", "final"]

metric = Metric.__table__
component = Component.__table__
execution = Execution.__table__
job = Job.__table__
metric_latest = MetricLatest.__table__


def _job_tag(job_id: Any) -> Any:
    def condition(key: str, predicate: ValuePredicate | None) -> sa.ColumnElement[bool]:
        found = (
            sa.select(JobTag.job_id)
            .join(Tag, Tag.id == JobTag.tag_id)
            .where(JobTag.job_id == job_id, Tag.key == key)
        )
        if predicate is not None:
            found = found.where(predicate(Tag.value))
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
}


def _one_or_many(column: Any, value: str | Iterable[str] | None) -> sa.ColumnElement[bool] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return column == value
    values = list(value)
    return column.in_(values) if values else sa.false()


def tag_clauses(tags: Mapping[str, str] | None) -> list[sa.ColumnElement[bool]]:
    """``tags={"env": "prod"}``: the job carries every given ``key=value``."""
    condition = _job_tag(job.c.id)
    return [
        condition(key, lambda column, v=value: column == v) for key, value in (tags or {}).items()
    ]


def metric_conditions(
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
) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses over ``metric`` ⋈ ``component`` ⋈ ``execution`` ⋈ ``job``."""
    if attempts not in ("all", "final"):
        raise ValidationError.single("attempts", "must be 'all' or 'final'")
    for label, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise ValidationError.single(label, "must be timezone-aware")
    clauses = [
        clause
        for clause in (
            _one_or_many(job.c.name, job_name),
            _one_or_many(component.c.name, component_name),
            _one_or_many(metric.c.name, name),
        )
        if clause is not None
    ]
    if execution_id is not None:
        clauses.append(metric.c.execution_id == execution_id)
    if since is not None:
        clauses.append(metric.c.recorded_at >= since)
    if until is not None:
        clauses.append(metric.c.recorded_at < until)
    clauses += tag_clauses(tags)
    if attempts == "final":
        clauses.append(metric.c.attempt == final_attempt())
    if filter:
        clauses.append(filter_clause(filter, METRIC_FIELDS))
    return clauses


def final_attempt() -> sa.ScalarSelect[Any]:
    """The last attempt of this row's step that recorded metrics (from ``metric_latest``).

    ``metric_latest`` holds one row per metric name, so this reads a handful of rows per step
    instead of every point of it.
    """
    latest = metric_latest.alias("final_attempt")
    return (
        sa.select(sa.func.max(latest.c.attempt))
        .where(
            latest.c.execution_id == metric.c.execution_id,
            latest.c.component_id == metric.c.component_id,
        )
        .scalar_subquery()
    )


def metric_from(*, with_execution: bool = True) -> Any:
    """``metric`` joined with the names analysts filter and group by.

    The job is reached through the component (a run's components belong to its job), so the
    planner can go job → its components → ``metric(component_id, name, recorded_at)``. The
    execution is joined only when run columns are returned or may be filtered on: joining it
    for nothing made PostgreSQL misestimate and probe the wrong index (benchmark (b)).
    """
    joined = metric.join(component, component.c.id == metric.c.component_id).join(
        job, job.c.id == component.c.job_id
    )
    if with_execution:
        joined = joined.join(execution, execution.c.id == metric.c.execution_id)
    return joined
