"""Dataclasses (data shapes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.errors import NotFoundError
from etl_meta.models import Dataclass
from etl_meta.validation import storable


def find_dataclass(session: Session, name: str) -> Dataclass | None:
    """The dataclass called ``name``, or ``None``."""
    if not storable(name):
        return None
    return session.scalars(sa.select(Dataclass).where(col(Dataclass.name) == name)).one_or_none()


def get_dataclass(session: Session, name: str) -> Dataclass:
    """The dataclass called ``name``; raises :class:`NotFoundError`."""
    found = find_dataclass(session, name)
    if found is None:
        raise NotFoundError("dataclass", name)
    return found


def dataclass_ids(session: Session, names: Iterable[str]) -> dict[str, int]:
    """``{name: id}`` for the names that exist and are not archived (callers report the rest)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(col(Dataclass.name), col(Dataclass.id)).where(
            col(Dataclass.name).in_(wanted), col(Dataclass.is_archived).is_(False)
        )
    )
    return {name: id_ for name, id_ in rows}


def list_dataclasses(
    session: Session, *, include_archived: bool = False, limit: int | None = None, offset: int = 0
) -> Sequence[Dataclass]:
    """Dataclasses ordered by name."""
    query = sa.select(Dataclass).order_by(col(Dataclass.name)).offset(offset)
    if not include_archived:
        query = query.where(col(Dataclass.is_archived).is_(False))
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()
