"""Executions and step attempts: idempotent, forward-only upserts on the orchestrator's keys.

An upsert first tries ``INSERT … ON CONFLICT DO NOTHING``; when the row exists it locks it and
merges. Merging never moves a status backwards: a late "queued" after "running" only fills fields
that are still empty, and once a row is terminal only an event of that same status may fill its
empty fields (anything else changes nothing). Replaying an event therefore changes nothing, and two
writers racing on a new run cannot create two rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.errors import ConflictError
from etl_meta.models import (
    Component,
    ComponentExecution,
    Execution,
    ExecutionStatus,
    ExecutionTag,
    Job,
    Orchestrator,
    StepStatus,
)
from etl_meta.repository.dialect import insert
from etl_meta.types import utcnow
from etl_meta.validation import storable

Outcome = Literal["created", "updated", "unchanged"]


def _merge(row: Any, values: Mapping[str, Any], status_field: str = "status") -> dict[str, Any]:
    """Apply ``values`` to ``row`` forward-only; return ``{field: (old, new)}`` of real changes.

    Once the row is terminal it is settled: an event of another status (a late ``running``, a
    contradicting ``failed`` after ``success``) changes nothing at all, and one of the same
    status may only fill fields still empty (an end time, the error of a failure).
    """
    old_status: ExecutionStatus | StepStatus = getattr(row, status_field)
    new_status: ExecutionStatus | StepStatus | None = values.get(status_field)
    if old_status.is_terminal and new_status != old_status:
        # Its fields describe another outcome or an earlier moment: a late ``failed`` must not
        # give a successful run an error, nor a late ``running`` a new log path. Between two
        # terminal statuses the first one recorded wins.
        return {}
    regress = new_status is not None and new_status.rank < old_status.rank
    # A stale event (behind the stored status), or the final one again: may only fill gaps.
    gaps_only = regress or old_status.is_terminal
    changes: dict[str, Any] = {}
    for field, new in values.items():
        if new is None:
            continue
        old = getattr(row, field)
        if field == status_field and regress:
            continue
        if gaps_only and old is not None:
            continue
        if old != new:
            setattr(row, field, new)
            changes[field] = (old, new)
    if changes:
        row.updated_at = utcnow()
    return changes


def upsert_execution(
    session: Session, *, job: Job, values: Mapping[str, Any]
) -> tuple[Execution, Outcome, dict[str, Any]]:
    """Create or merge the execution keyed by ``(orchestrator, external_run_id)``."""
    orchestrator, run_id = values["orchestrator"], values["external_run_id"]
    row_values = {k: v for k, v in values.items() if v is not None}
    now = utcnow()
    created = session.scalar(
        insert(session, Execution)
        .values(job_id=job.id, created_at=now, updated_at=now, **row_values)
        .on_conflict_do_nothing(index_elements=["orchestrator", "external_run_id"])
        .returning(Execution)  # the whole row as stored: no second query to read it back
    )
    if created is not None:
        return created, "created", {}
    row = find_execution(session, orchestrator, run_id, for_update=True)
    assert row is not None
    if row.job_id != job.id:
        raise ConflictError(
            f"{orchestrator} run {run_id!r} is already recorded for another job",
            entity="execution",
            field="job",
        )
    changes = _merge(row, values)
    session.flush()
    return row, ("updated" if changes else "unchanged"), changes


def upsert_attempt(
    session: Session, *, execution: Execution, component: Component, values: Mapping[str, Any]
) -> tuple[ComponentExecution, Outcome, dict[str, Any]]:
    """Create or merge the attempt keyed by ``(execution, component, attempt)``."""
    row_values = {k: v for k, v in values.items() if v is not None}
    now = utcnow()
    new_id = session.scalar(
        insert(session, ComponentExecution)
        .values(
            execution_id=execution.id,
            component_id=component.id,
            created_at=now,
            updated_at=now,
            **row_values,
        )
        .on_conflict_do_nothing(index_elements=["execution_id", "component_id", "attempt"])
        .returning(ComponentExecution.id)
    )
    if new_id is not None:
        created = session.get(ComponentExecution, new_id, populate_existing=True)
        assert created is not None
        return created, "created", {}
    row = session.scalars(
        sa.select(ComponentExecution)
        .where(
            col(ComponentExecution.execution_id) == execution.id,
            col(ComponentExecution.component_id) == component.id,
            ComponentExecution.attempt == values["attempt"],
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    changes = _merge(row, values)
    session.flush()
    return row, ("updated" if changes else "unchanged"), changes


def insert_attempts(
    session: Session,
    *,
    execution: Execution,
    attempts: Sequence[tuple[Component, Mapping[str, Any]]],
) -> list[ComponentExecution]:
    """Insert the attempts of a run created in this transaction, in one multi-row statement.

    Only for a new run, whose attempts cannot exist yet, each ``(component, attempt)`` given
    once (a duplicate would violate the unique key; :func:`upsert_attempt` merges those).
    Returns the stored rows in the order given.
    """
    now = utcnow()
    parameters = [
        {
            "execution_id": execution.id,
            "component_id": component.id,
            "created_at": now,
            "updated_at": now,
            **{k: v for k, v in values.items() if v is not None},
        }
        for component, values in attempts
    ]
    # Rows with and without optional fields must share one column list to go in one statement.
    columns = {key for row in parameters for key in row}
    parameters = [{key: row.get(key) for key in columns} for row in parameters]
    rows = session.scalars(
        sa.insert(ComponentExecution).returning(ComponentExecution, sort_by_parameter_order=True),
        parameters,
    )
    return list(rows)


def find_execution(
    session: Session, orchestrator: Orchestrator, external_run_id: str, *, for_update: bool = False
) -> Execution | None:
    """The execution an orchestrator knows as ``external_run_id``, or ``None``."""
    if not storable(external_run_id):
        return None
    query = sa.select(Execution).where(
        col(Execution.orchestrator) == orchestrator,
        col(Execution.external_run_id) == external_run_id,
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def recorded_state(
    session: Session, orchestrator: Orchestrator, run_ids: Iterable[str]
) -> dict[str, tuple[ExecutionStatus, datetime]]:
    """``{run id: (status, updated_at)}`` of the given runs the store holds, in one query."""
    ids = [run_id for run_id in run_ids if storable(run_id)]
    if not ids:
        return {}
    rows = session.execute(
        sa.select(
            col(Execution.external_run_id), col(Execution.status), col(Execution.updated_at)
        ).where(
            col(Execution.orchestrator) == orchestrator, col(Execution.external_run_id).in_(ids)
        )
    )
    return {run_id: (status, updated_at) for run_id, status, updated_at in rows}


def find_by_run_id(session: Session, run_id: str) -> Sequence[Execution]:
    """Executions whose orchestrator run id is ``run_id`` (any orchestrator)."""
    if not storable(run_id):
        return []
    return session.scalars(
        sa.select(Execution).where(col(Execution.external_run_id) == run_id)
    ).all()


def list_executions(
    session: Session,
    *,
    job_id: int | None = None,
    status: ExecutionStatus | None = None,
    orchestrator: Orchestrator | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    tags: Mapping[str, str] | None = None,
    limit: int = 50,
) -> Sequence[Execution]:
    """Executions newest first (by id, which is stable under concurrent inserts for paging);
    ``tags``: only runs carrying every given ``key=value``."""
    query = sa.select(Execution).order_by(col(Execution.id).desc()).limit(limit)
    for key, value in (tags or {}).items():
        query = query.where(
            sa.exists().where(
                col(ExecutionTag.execution_id) == Execution.id,
                col(ExecutionTag.key) == key,
                col(ExecutionTag.value) == value,
            )
        )
    if job_id is not None:
        query = query.where(col(Execution.job_id) == job_id)
    if status is not None:
        query = query.where(col(Execution.status) == status)
    if orchestrator is not None:
        query = query.where(col(Execution.orchestrator) == orchestrator)
    if since is not None:
        query = query.where(col(Execution.created_at) >= since)
    if before_id is not None:
        query = query.where(col(Execution.id) < before_id)
    return session.scalars(query).all()


def latest_executions(session: Session, job_ids: Iterable[int]) -> dict[int, Execution]:
    """The newest execution of each given job, in one query."""
    ids = list(job_ids)
    if not ids:
        return {}
    newest = (
        sa.select(sa.func.max(col(Execution.id)))
        .where(col(Execution.job_id).in_(ids))
        .group_by(col(Execution.job_id))
    )
    rows = session.scalars(sa.select(Execution).where(col(Execution.id).in_(newest)))
    return {row.job_id: row for row in rows}


def attempts_by_execution(
    session: Session, execution_ids: Iterable[int]
) -> dict[int, list[tuple[ComponentExecution, str]]]:
    """``{execution_id: [(attempt, component name)]}`` ordered by start, then attempt."""
    ids = list(execution_ids)
    result: dict[int, list[tuple[ComponentExecution, str]]] = defaultdict(list)
    if not ids:
        return result
    rows = session.execute(
        sa.select(ComponentExecution, col(Component.name))
        .join(Component, col(Component.id) == ComponentExecution.component_id)
        .where(col(ComponentExecution.execution_id).in_(ids))
        .order_by(col(ComponentExecution.component_id), col(ComponentExecution.attempt))
    )
    for attempt, name in rows:
        result[attempt.execution_id].append((attempt, name))
    return result


def step_status_counts(session: Session, execution_id: int) -> dict[StepStatus, int]:
    """How many attempts of the execution ended in each status."""
    rows = session.execute(
        sa.select(col(ComponentExecution.status), sa.func.count())
        .where(col(ComponentExecution.execution_id) == execution_id)
        .group_by(col(ComponentExecution.status))
    )
    return {StepStatus(status): count for status, count in rows}
