"""The one place that knows SQLite and PostgreSQL spell upserts differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_name(session: Session) -> str:
    """``sqlite`` or ``postgresql``."""
    return session.get_bind().dialect.name


def insert(session: Session, model: Any) -> Any:
    """An ``INSERT`` that supports ``on_conflict_do_nothing``/``on_conflict_do_update``.

    Both dialects' constructs share that API (and ``RETURNING``; SQLite ≥ 3.35).
    """
    if dialect_name(session) == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)
