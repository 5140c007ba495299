"""The audit trail: who changed what, when, with a masked before/after.

``actor`` is who the writing process says it acts for; ``db_login`` (PostgreSQL only) is the
database login that wrote the row, set by the database and not forgeable by the client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from etl_meta.models.base import EtlModel, PublicModel
from etl_meta.types import BigIntPK, JSONDocument, UTCDateTime, utcnow


class AuditEvent(EtlModel, table=True):
    """Written in the same transaction as the change it describes; never updated."""

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_entity_type_entity_id", "entity_type", "entity_id"),
        sa.Index("ix_audit_event_occurred_at", "occurred_at"),
        # One per filter of ``store.audit.list``, ending with ``id``: a filtered page, newest
        # first from ``before_id``, is a backward range scan (migration 0008).
        sa.Index("ix_audit_event_entity_type_entity_key_id", "entity_type", "entity_key", "id"),
        sa.Index("ix_audit_event_action_id", "action", "id"),
        sa.Index("ix_audit_event_actor_id", "actor", "id"),
    )

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    # Set by a PostgreSQL trigger to session_user whatever the client sends (migration 0006);
    # NULL on SQLite, which has no logins.
    db_login: str | None = Field(default=None, max_length=63)
    action: str = Field(max_length=50)
    entity_type: str = Field(max_length=50)
    entity_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    entity_key: str = Field(max_length=300)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)


class AuditEventPublic(PublicModel):
    id: int
    occurred_at: datetime
    actor: str
    db_login: str | None = None
    action: str
    entity_type: str
    entity_id: int | None
    entity_key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
