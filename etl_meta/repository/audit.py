"""The audit trail: written in the caller's transaction, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.masking import mask_value
from etl_meta.models import AuditEvent

#: The key of ``after`` listing the paths of secrets that changed (their values stay masked).
MASKED_CHANGES = "masked_changes"


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
    masked_changes: Sequence[str] = (),
) -> AuditEvent:
    """Add an audit event; ``before``/``after`` are masked here whatever the caller passed.

    ``masked_changes`` names the secrets that changed (paths, never values): added to the
    masked ``after`` as ``masked_changes``, since ``***`` → ``***`` alone shows no change.
    """
    masked_after = mask_value(after, component_type=component_type) if after is not None else None
    if masked_changes:
        # Added after masking: the key must not read as a secret (no "secret" in its name).
        masked_after = {**(masked_after or {}), MASKED_CHANGES: sorted(set(masked_changes))}
    event = AuditEvent(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        entity_key=entity_key[:300],
        before=mask_value(before, component_type=component_type) if before is not None else None,
        after=masked_after,
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
    query = sa.select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    filters = {
        col(AuditEvent.entity_type): entity_type,
        col(AuditEvent.entity_key): entity_key,
        col(AuditEvent.entity_id): entity_id,
        col(AuditEvent.action): action,
        col(AuditEvent.actor): actor,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(col(AuditEvent.occurred_at) >= since)
    if before_id is not None:
        query = query.where(col(AuditEvent.id) < before_id)
    return session.scalars(query).all()
