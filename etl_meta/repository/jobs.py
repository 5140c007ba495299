"""Jobs and their tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.errors import NotFoundError
from etl_meta.models import Job, JobTag, Tag
from etl_meta.repository.dialect import insert
from etl_meta.types import utcnow
from etl_meta.validation import storable


def find_job(session: Session, name: str, *, for_update: bool = False) -> Job | None:
    """The job called ``name``, or ``None``. ``for_update`` locks the row (PostgreSQL)."""
    if not storable(name):
        return None
    query = sa.select(Job).where(col(Job.name) == name)
    if for_update:
        # Refresh the row: the session may hold it from an earlier read, and a lock taken on
        # stale attributes would lose concurrent changes (the revision counter, for one).
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def touch_job(job: Job) -> None:
    """Record a change to the job's definition: bump its revision and ``updated_at``.

    Orchestrators compare revisions to know when to reload a job, so every change to the job or
    to one of its components calls this (in the same transaction).
    """
    job.revision += 1
    job.updated_at = utcnow()


def get_job(session: Session, name: str, *, for_update: bool = False) -> Job:
    """The job called ``name``; raises :class:`NotFoundError`."""
    job = find_job(session, name, for_update=for_update)
    if job is None:
        raise NotFoundError("job", name)
    return job


def list_jobs(
    session: Session,
    *,
    include_archived: bool = False,
    tags: Mapping[str, str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Sequence[Job]:
    """Jobs ordered by name; ``tags`` keeps jobs carrying every given ``key=value``."""
    if not all(storable(text) for pair in (tags or {}).items() for text in pair):
        return []  # no tag can hold such a key or value
    query = sa.select(Job).order_by(col(Job.name)).offset(offset)
    if not include_archived:
        query = query.where(col(Job.is_archived).is_(False))
    for key, value in (tags or {}).items():
        tagged = (
            sa.select(col(JobTag.job_id))
            .join(Tag, col(Tag.id) == JobTag.tag_id)
            .where(col(Tag.key) == key, col(Tag.value) == value)
        )
        query = query.where(col(Job.id).in_(tagged))
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def tags_by_job(session: Session, job_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """``{job_id: {key: value}}`` for the given jobs, in one query."""
    ids = list(job_ids)
    result: dict[int, dict[str, str]] = {job_id: {} for job_id in ids}
    if not ids:
        return result
    rows = session.execute(
        sa.select(col(JobTag.job_id), col(Tag.key), col(Tag.value))
        .join(Tag, col(Tag.id) == JobTag.tag_id)
        .where(col(JobTag.job_id).in_(ids))
        .order_by(col(Tag.key))
    )
    for job_id, key, value in rows:
        result[job_id][key] = value
    return result


def set_tags(session: Session, job: Job, tags: Mapping[str, str]) -> bool:
    """Make ``job`` carry exactly ``tags``; returns whether anything changed."""
    assert job.id is not None
    current = tags_by_job(session, [job.id])[job.id]
    if current == dict(tags):
        return False
    session.execute(sa.delete(JobTag).where(col(JobTag.job_id) == job.id))
    for key, value in tags.items():
        tag_id = _tag_id(session, key, value)
        session.add(JobTag(job_id=job.id, tag_id=tag_id))
    session.flush()
    return True


def _tag_id(session: Session, key: str, value: str) -> int:
    # Insert-or-ignore then select: safe when two writers add the same new tag at once.
    session.execute(
        insert(session, Tag)
        .values(key=key, value=value)
        .on_conflict_do_nothing(index_elements=["key", "value"])
    )
    return session.scalars(
        sa.select(col(Tag.id)).where(col(Tag.key) == key, col(Tag.value) == value)
    ).one()


def job_names(session: Session, job_ids: Iterable[int]) -> dict[int, str]:
    """``{job_id: name}`` for the given ids, in one query."""
    ids = list(set(job_ids))
    if not ids:
        return {}
    rows = session.execute(sa.select(col(Job.id), col(Job.name)).where(col(Job.id).in_(ids)))
    return {job_id: name for job_id, name in rows}
