"""Run history as DataFrames: durations, attempts, retries and what they cost, success rates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from etl_meta.analytics._select import RUN_FIELDS, execution, table_of, tag_clauses
from etl_meta.analytics._select import job as job_table
from etl_meta.analytics.fetch import Kind, read_frame
from etl_meta.errors import ValidationError
from etl_meta.filters import filter_clause
from etl_meta.models import Component, ComponentExecution
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

attempt = table_of(ComponentExecution)
component = table_of(Component)

RUN_COLUMNS: Mapping[str, Kind] = {
    "run_id": "int",
    "job": "category",
    "orchestrator": "category",
    "external_run_id": "text",
    "status": "category",
    "started_at": "timestamp",
    "ended_at": "timestamp",
    "job_revision": "int",
}
ATTEMPT_COLUMNS: Mapping[str, Kind] = {
    "run_id": "int",
    "component": "category",
    "attempt": "int",
    "status": "category",
    "started_at": "timestamp",
    "ended_at": "timestamp",
}


def _run_conditions(
    *,
    job_name: str | Iterable[str] | None,
    status: str | Iterable[str] | None,
    since: datetime | None,
    until: datetime | None,
    tags: Mapping[str, str] | None,
    filter: str | None,
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    for column, value in ((job_table.c.name, job_name), (execution.c.status, status)):
        if value is not None:
            values = [value] if isinstance(value, str) else list(value)
            clauses.append(column.in_(values))
    for label, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise ValidationError.single(label, "must be timezone-aware")
    # A run belongs to the window it started in (runs not started yet: when they were created).
    when = sa.func.coalesce(execution.c.started_at, execution.c.created_at)
    if since is not None:
        clauses.append(when >= since)
    if until is not None:
        clauses.append(when < until)
    clauses += tag_clauses(tags)
    if filter:
        clauses.append(filter_clause(filter, RUN_FIELDS))
    return clauses


def run_history(
    store: MetadataStore,
    *,
    job: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    filter: str | None = None,
    before_id: int | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """One row per run, newest first: status, duration, steps, attempts, retries, retry cost.

    ``retry_seconds`` is the time spent in attempts that failed and were retried — what the
    retries cost. ``before_id``/``limit`` page through the result (newest first, stable while
    new runs arrive).
    """
    import pandas as pd

    clauses = _run_conditions(
        job_name=job, status=status, since=since, until=until, tags=tags, filter=filter
    )
    if before_id is not None:
        clauses.append(execution.c.id < before_id)
    query = (
        sa.select(
            execution.c.id,
            job_table.c.name,
            execution.c.orchestrator,
            execution.c.external_run_id,
            execution.c.status,
            execution.c.started_at,
            execution.c.ended_at,
            execution.c.job_revision,
        )
        .select_from(execution.join(job_table, job_table.c.id == execution.c.job_id))
        .where(*clauses)
        .order_by(execution.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    runs = read_frame(store, query, RUN_COLUMNS)
    runs["duration_seconds"] = (runs["ended_at"] - runs["started_at"]).dt.total_seconds()
    attempts = step_attempts(store, run_ids=runs["run_id"].tolist())
    if attempts.empty:
        summary = pd.DataFrame(
            {"steps": [], "attempts": [], "retries": [], "retry_seconds": []},
            index=pd.Index([], name="run_id"),
        )
    else:
        attempts["retried"] = ~attempts["is_final_attempt"]
        attempts["retried_seconds"] = attempts["duration_seconds"].where(attempts["retried"], 0.0)
        summary = attempts.groupby("run_id").agg(
            steps=("component", "nunique"),
            attempts=("attempt", "size"),
            retries=("retried", "sum"),
            retry_seconds=("retried_seconds", "sum"),
        )
    runs = runs.join(summary, on="run_id")
    for column in ("steps", "attempts", "retries"):
        runs[column] = runs[column].fillna(0).astype("int64")
    runs["retry_seconds"] = runs["retry_seconds"].fillna(0.0).astype("float64")
    return runs


def step_attempts(store: MetadataStore, *, run_ids: Iterable[int]) -> pd.DataFrame:
    """Every attempt of every step of the given runs, with duration and final-attempt flag."""
    ids = list(run_ids)
    query = (
        sa.select(
            attempt.c.execution_id,
            component.c.name,
            attempt.c.attempt,
            attempt.c.status,
            attempt.c.started_at,
            attempt.c.ended_at,
        )
        .select_from(attempt.join(component, component.c.id == attempt.c.component_id))
        .where(attempt.c.execution_id.in_(ids) if ids else sa.false())
        .order_by(attempt.c.execution_id, component.c.name, attempt.c.attempt)
    )
    frame = read_frame(store, query, ATTEMPT_COLUMNS)
    frame["duration_seconds"] = (frame["ended_at"] - frame["started_at"]).dt.total_seconds()
    last = frame.groupby(["run_id", "component"], observed=True)["attempt"].transform("max")
    frame["is_final_attempt"] = frame["attempt"] == last
    return frame


SUCCESS_COLUMNS: Mapping[str, Kind] = {
    "job": "category",
    "runs": "int",
    "succeeded": "int",
    "failed": "int",
    "canceled": "int",
    "unfinished": "int",
}


def success_rate(
    store: MetadataStore,
    *,
    job: str | Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    filter: str | None = None,
) -> pd.DataFrame:
    """Per job over the window: runs, outcomes, and ``success_rate`` among finished runs."""
    clauses = _run_conditions(
        job_name=job, status=None, since=since, until=until, tags=tags, filter=filter
    )

    def count(*statuses: str) -> sa.ColumnElement[int]:
        return sa.func.coalesce(
            sa.func.sum(sa.case((execution.c.status.in_(statuses), 1), else_=0)), 0
        )

    name = job_table.c.name
    query = (
        sa.select(
            name,
            sa.func.count(),
            count("success"),
            count("failed"),
            count("canceled"),
            count("queued", "running"),
        )
        .select_from(execution.join(job_table, job_table.c.id == execution.c.job_id))
        .where(*clauses)
        .group_by(name)
        .order_by(name)
    )
    frame = read_frame(store, query, SUCCESS_COLUMNS)
    finished = frame["succeeded"] + frame["failed"] + frame["canceled"]
    frame["success_rate"] = (frame["succeeded"] / finished.where(finished > 0)).astype("float64")
    return frame
