"""Run tags: read a run's tags, merge an orchestrator's, set and remove a person's.

Every write here runs while the caller holds the execution's row (created or locked in the same
transaction), so two writers of one run's tags take turns. Each returns ``{key: (old, new)}`` of
what really changed (``None`` for absent): an empty result means nothing was written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.errors import ConflictError, ValidationError
from etl_meta.models import ExecutionTag, TagSource
from etl_meta.models.execution_tag import MAX_RUN_TAGS
from etl_meta.types import utcnow

TagChanges = dict[str, tuple[str | None, str | None]]


def tags_by_execution(session: Session, execution_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """``{execution id: {key: value}}`` (keys sorted) for the given runs, in one query."""
    ids = list(execution_ids)
    if not ids:
        return {}
    rows = session.execute(
        sa.select(col(ExecutionTag.execution_id), col(ExecutionTag.key), col(ExecutionTag.value))
        .where(col(ExecutionTag.execution_id).in_(ids))
        .order_by(col(ExecutionTag.execution_id), col(ExecutionTag.key))
    )
    found: dict[int, dict[str, str]] = defaultdict(dict)
    for execution_id, key, value in rows:
        found[execution_id][key] = value
    return dict(found)


def _rows(session: Session, execution_id: int) -> dict[str, ExecutionTag]:
    query = (
        sa.select(ExecutionTag)
        .where(col(ExecutionTag.execution_id) == execution_id)
        .execution_options(populate_existing=True)
    )
    return {row.key: row for row in session.scalars(query)}


def _tag(execution_id: int, key: str, value: str, source: TagSource, now: datetime) -> ExecutionTag:
    return ExecutionTag(
        execution_id=execution_id,
        key=key,
        value=value,
        source=source,
        created_at=now,
        updated_at=now,
    )


def _check_count(existing: Mapping[str, object], adding: Iterable[str], field: str) -> None:
    total = len(set(existing) | set(adding))
    if total > MAX_RUN_TAGS:
        raise ValidationError.single(
            field, f"a run may carry at most {MAX_RUN_TAGS} tags; this would make {total}"
        )


def merge_orchestrator_tags(
    session: Session, execution_id: int, tags: Mapping[str, str], source: TagSource
) -> tuple[TagChanges, dict[str, str]]:
    """Add the orchestrator's new keys and update its changed values; returns what changed and
    the run's tags after the merge (keys sorted).

    A person's tag (source ``user``) is kept as the person set it, and a key the orchestrator no
    longer reports is kept too: replaying an older event changes nothing. New keys beyond
    :data:`MAX_RUN_TAGS` are left out, in key order, never refused: the run must be recorded.
    """
    existing = _rows(session, execution_id)
    changes: TagChanges = {}
    now = utcnow()
    room = MAX_RUN_TAGS - len(existing)
    for key in sorted(tags):
        value, row = tags[key], existing.get(key)
        if row is None and room > 0:
            session.add(_tag(execution_id, key, value, source, now))
            changes[key] = (None, value)
            room -= 1
        elif row is not None and row.source is not TagSource.USER and row.value != value:
            changes[key] = (row.value, value)
            row.value, row.source, row.updated_at = value, source, now
    session.flush()
    after = {key: row.value for key, row in existing.items()}
    # Keys added by this merge (an addition always has a new value; a removal never happens here).
    after.update(
        {key: new for key, (old, new) in changes.items() if old is None and new is not None}
    )
    return changes, dict(sorted(after.items()))


def set_user_tags(session: Session, execution_id: int, tags: Mapping[str, str]) -> TagChanges:
    """Set ``tags`` as a person's: they override the orchestrator's value of the same key."""
    existing = _rows(session, execution_id)
    _check_count(existing, tags, "tags")
    changes: TagChanges = {}
    now = utcnow()
    for key, value in tags.items():
        row = existing.get(key)
        if row is None:
            session.add(_tag(execution_id, key, value, TagSource.USER, now))
            changes[key] = (None, value)
        elif row.value != value:  # the same value again changes nothing, not even the source
            changes[key] = (row.value, value)
            row.value, row.source, row.updated_at = value, TagSource.USER, now
    session.flush()
    return changes


def remove_user_tags(session: Session, execution_id: int, keys: Iterable[str]) -> TagChanges:
    """Remove a person's tags; an orchestrator's tag cannot be removed (its next replay would
    write it again), only overwritten. A key the run does not carry is not an error."""
    existing = _rows(session, execution_id)
    changes: TagChanges = {}
    for key in keys:
        row = existing.get(key)
        if row is None:
            continue
        if row.source is not TagSource.USER:
            raise ConflictError(
                f"tag {key!r} was written by {row.source.value}, which would write it again; "
                "set another value instead of removing it",
                entity="execution",
                field=f"remove.{key}",
            )
        changes[key] = (row.value, None)
        session.delete(row)
    session.flush()
    return changes
