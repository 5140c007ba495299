"""Sync cursors: read one, write one (an upsert on the name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.models import SyncCursor
from etl_meta.repository.dialect import insert


def find_cursor(session: Session, name: str) -> SyncCursor | None:
    """The cursor called ``name``, or ``None``."""
    return session.get(SyncCursor, name, populate_existing=True)


def save_cursor(session: Session, *, name: str, value: dict[str, Any], now: datetime) -> None:
    """Create or replace the cursor ``name`` in one statement (racing writers: the last wins)."""
    statement = insert(session, SyncCursor).values(name=name, value=value, updated_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SyncCursor.name],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )


def list_cursors(session: Session) -> list[SyncCursor]:
    """Every cursor, by name."""
    return list(session.scalars(sa.select(SyncCursor).order_by(col(SyncCursor.name))))
