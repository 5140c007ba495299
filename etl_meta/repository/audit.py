"""The audit trail: written in the caller's transaction, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from etl_meta.masking import mask_value
from etl_meta.models import AuditEvent


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_key: str,
    entity_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    component_type: str | None = None,
) -> AuditEvent:
    """Add an audit event; ``before``/``after`` are masked here whatever the caller passed."""
    event = AuditEvent(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        entity_key=entity_key[:300],
        before=mask_value(before, component_type=component_type) if before is not None else None,
        after=mask_value(after, component_type=component_type) if after is not None else None,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    entity_type: str | None = None,
    entity_key: str | None = None,
    entity_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    """Events matching every given filter, newest first; page with ``before_id``."""
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    filters = {
        AuditEvent.entity_type: entity_type,
        AuditEvent.entity_key: entity_key,
        AuditEvent.entity_id: entity_id,
        AuditEvent.action: action,
        AuditEvent.actor: actor,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query).all()
