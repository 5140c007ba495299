"""Run requests: rows an orchestrator sensor turns into exactly one run each."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.errors import NotFoundError
from etl_meta.models import Orchestrator, RunRequest, RunRequestStatus


def find_by_key(session: Session, request_key: str) -> RunRequest | None:
    """The request with this idempotency key, or ``None``."""
    return session.scalars(
        sa.select(RunRequest).where(col(RunRequest.request_key) == request_key)
    ).one_or_none()


def get_request(session: Session, request_id: int, *, for_update: bool = False) -> RunRequest:
    """The request with this id; raises :class:`NotFoundError`."""
    query = sa.select(RunRequest).where(col(RunRequest.id) == request_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalars(query).one_or_none()
    if found is None:
        raise NotFoundError("run_request", request_id)
    return found


def list_requests(
    session: Session,
    *,
    status: RunRequestStatus | None = None,
    orchestrator: Orchestrator | None = None,
    job_id: int | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> Sequence[RunRequest]:
    """Requests oldest first. ``orchestrator`` also matches requests that name none.

    Poll pending requests by status, not only by ``after_id``: PostgreSQL sequence values can
    commit out of order, so an id cursor alone may step over a row committed late.
    """
    query = sa.select(RunRequest).order_by(col(RunRequest.id)).limit(limit)
    if status is not None:
        query = query.where(col(RunRequest.status) == status)
    if orchestrator is not None:
        query = query.where(
            sa.or_(
                col(RunRequest.orchestrator) == orchestrator, col(RunRequest.orchestrator).is_(None)
            )
        )
    if job_id is not None:
        query = query.where(col(RunRequest.job_id) == job_id)
    if after_id is not None:
        query = query.where(col(RunRequest.id) > after_id)
    return session.scalars(query).all()
