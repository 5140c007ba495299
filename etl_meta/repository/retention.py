"""Retention policies and the runs a policy pass selects, per job.

Runs are selected as in :mod:`etl_meta.repository.maintenance` (terminal, aged by
``COALESCE(ended_at, started_at, created_at)``, locked with ``SKIP LOCKED`` on PostgreSQL), but
per job. Raw metric points are only ever touched through :mod:`etl_meta.repository.rollups`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.models import ComponentExecution, Execution, Job, MetricRollup, RetentionPolicy
from etl_meta.repository import rollups
from etl_meta.repository.dialect import dialect_name
from etl_meta.repository.maintenance import TERMINAL_STATUSES, run_age


def list_policies(session: Session) -> list[tuple[RetentionPolicy, str | None]]:
    """Every stored policy with its job's name (``None`` for the default), default first."""
    query = (
        sa.select(RetentionPolicy, col(Job.name))
        .outerjoin(Job, col(Job.id) == RetentionPolicy.job_id)
        .order_by(col(RetentionPolicy.is_default).desc(), col(Job.name))
    )
    return [(policy, name) for policy, name in session.execute(query)]


def find_policy(session: Session, job_id: int | None) -> RetentionPolicy | None:
    """The default policy (``job_id=None``) or ``job_id``'s override, if stored."""
    condition = (
        col(RetentionPolicy.is_default).is_(True)
        if job_id is None
        else col(RetentionPolicy.job_id) == job_id
    )
    return session.scalars(sa.select(RetentionPolicy).where(condition)).one_or_none()


def all_jobs(session: Session) -> list[tuple[int, str]]:
    """``(id, name)`` of every job, archived ones too (their old runs age like any other)."""
    rows = session.execute(sa.select(col(Job.id), col(Job.name)).order_by(col(Job.name)))
    return [(job_id, name) for job_id, name in rows]


def _old_runs(job_id: int, older_than: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(Execution.job_id) == job_id,
        col(Execution.status).in_(TERMINAL_STATUSES),
        run_age() < older_than,
    )


def _selection(job_id: int, older_than: datetime, *, raw_only: bool) -> sa.ColumnElement[bool]:
    condition = _old_runs(job_id, older_than)
    return sa.and_(condition, rollups.has_raw_points()) if raw_only else condition


def lock_batch(
    session: Session,
    *,
    job_id: int,
    older_than: datetime,
    raw_only: bool,
    after_id: int,
    limit: int,
) -> list[int]:
    """Ids of up to ``limit`` finished runs of ``job_id`` older than ``older_than``, locked.

    ``raw_only`` keeps only runs that still have raw points (the rollup phase).
    """
    query = (
        sa.select(col(Execution.id))
        .where(_selection(job_id, older_than, raw_only=raw_only), col(Execution.id) > after_id)
        .order_by(col(Execution.id))
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def still_selected(
    session: Session, ids: Sequence[int], *, job_id: int, older_than: datetime, raw_only: bool
) -> list[int]:
    """Of the locked ``ids``, those the selection still holds (re-checked under the lock)."""
    if not ids:
        return []
    query = (
        sa.select(col(Execution.id))
        .where(col(Execution.id).in_(ids), _selection(job_id, older_than, raw_only=raw_only))
        .order_by(col(Execution.id))
    )
    return list(session.scalars(query))


def count_selected(
    session: Session, *, job_id: int, older_than: datetime, raw_only: bool
) -> tuple[int, int, int]:
    """``(runs, attempts, raw points)`` the selection holds now (for dry runs)."""
    ids = sa.select(col(Execution.id)).where(_selection(job_id, older_than, raw_only=raw_only))
    runs = session.scalar(sa.select(sa.func.count()).select_from(ids.subquery())) or 0
    attempts = session.scalar(
        sa.select(sa.func.count())
        .select_from(ComponentExecution)
        .where(col(ComponentExecution.execution_id).in_(ids))
    )
    return runs, attempts or 0, rollups.count_raw_points(session, ids)


def count_unfinished(session: Session, *, job_id: int, older_than: datetime) -> int:
    """Queued or running runs of ``job_id`` older than the horizon: never touched."""
    query = (
        sa.select(sa.func.count())
        .select_from(Execution)
        .where(
            col(Execution.job_id) == job_id,
            col(Execution.status).not_in(TERMINAL_STATUSES),
            run_age() < older_than,
        )
    )
    return session.scalar(query) or 0


def delete_rollups(session: Session, ids: Sequence[int]) -> int:
    """Delete the daily rollups of the runs ``ids`` (before the runs themselves)."""
    if not ids:
        return 0
    result = session.execute(
        sa.delete(MetricRollup).where(col(MetricRollup.execution_id).in_(ids)),
        execution_options={"synchronize_session": False},
    )
    return max(result.rowcount, 0)  # type: ignore[attr-defined]
