"""``store.jobs``: create, read, update, archive and list jobs (with tags and components)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from etl_meta.access import Role, requires
from etl_meta.errors import AlreadyExistsError
from etl_meta.models import (
    ComponentCreate,
    ExecutionPublic,
    Job,
    JobCreate,
    JobPublic,
    JobUpdate,
)
from etl_meta.models.job import TagBase
from etl_meta.repository import components as components_repo
from etl_meta.repository import executions as executions_repo
from etl_meta.repository import jobs as jobs_repo
from etl_meta.store._base import StoreAPI, diff, record_change
from etl_meta.store._public import execution_public, job_public, jsonable
from etl_meta.store.components import create_components
from etl_meta.validation import TAG_KEY_RE, validate_input

_JOB_FIELDS = ("num_of_retries", "file_logging", "strategy_type", "description", "max_concurrency")


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        # The key is part of the error's field path: quote and escape one that is not a valid
        # key, so control characters never reach a terminal through an error message.
        label = key if isinstance(key, str) and TAG_KEY_RE.fullmatch(key) else json.dumps(key)
        validate_input(TagBase, {"key": key, "value": value}, entity="tag", prefix=f"tags.{label}.")
    return dict(tags)


class JobsAPI(StoreAPI):
    """Jobs: the unit an orchestrator runs. Names are unique and identifier-safe."""

    namespace = "jobs"

    @requires(Role.ADMIN)
    def create(self, data: JobCreate | Mapping[str, Any]) -> JobPublic:
        """Create a job, optionally with its components in the same transaction.

        ``data`` may carry ``components`` (a list of component definitions whose ``depends_on``
        may name each other).

        Raises:
            ValidationError: a field is invalid (``error.field`` names it).
            AlreadyExistsError: a job with that name exists.
        """
        raw = dict(data.model_dump(exclude_unset=True) if isinstance(data, JobCreate) else data)
        components = raw.pop("components", None) or []
        job_in: JobCreate = self._validate(JobCreate, raw, entity="job")
        tags = _check_tags(job_in.tags)
        component_defs = [
            self._validate(ComponentCreate, c, entity="component", prefix=f"components.{i}.")
            for i, c in enumerate(components)
        ]
        with self._tx() as session:
            if jobs_repo.find_job(session, job_in.name) is not None:
                raise AlreadyExistsError("job", job_in.name)
            job = Job.model_validate(job_in.model_dump(exclude={"tags"}))
            session.add(job)
            session.flush()
            jobs_repo.set_tags(session, job, tags)
            after = jsonable(job.model_dump(exclude={"id"})) | {"tags": tags}
            record_change(
                self._store,
                session,
                action="create",
                entity_type="job",
                entity_key=job.name,
                entity_id=job.id,
                after=after,
            )
            if component_defs:
                # Components created with the job are part of its first revision.
                create_components(self._store, session, job, component_defs, touch_job=False)
            return self.get(job.name, with_components=bool(component_defs))

    @requires(Role.READER)
    def get(self, name: str, *, with_components: bool = False) -> JobPublic:
        """The job called ``name``; raises :class:`~etl_meta.errors.NotFoundError`."""
        with self._tx(readonly=True) as session:
            job = jobs_repo.get_job(session, name)
            tags = jobs_repo.tags_by_job(session, [job.id])[job.id]
            components = (
                components_repo.load_components(session, {job.id: job.name}).get(job.id, [])
                if with_components
                else None
            )
            return job_public(job, tags, components)

    @requires(Role.READER)
    def exists(self, name: str) -> bool:
        """Whether a job called ``name`` exists (archived or not)."""
        with self._tx(readonly=True) as session:
            return jobs_repo.find_job(session, name) is not None

    @requires(Role.READER)
    def list(
        self,
        *,
        include_archived: bool = False,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_components: bool = False,
    ) -> list[JobPublic]:
        """Jobs ordered by name, optionally only those carrying every tag in ``tags``."""
        with self._tx(readonly=True) as session:
            jobs = jobs_repo.list_jobs(
                session, include_archived=include_archived, tags=tags, limit=limit, offset=offset
            )
            tag_map = jobs_repo.tags_by_job(session, [job.id for job in jobs])
            components = (
                components_repo.load_components(session, {job.id: job.name for job in jobs})
                if with_components
                else {}
            )
            return [
                job_public(
                    job, tag_map[job.id], components.get(job.id) if with_components else None
                )
                for job in jobs
            ]

    @requires(Role.ADMIN)
    def update(self, name: str, data: JobUpdate | Mapping[str, Any]) -> JobPublic:
        """Change the fields set in ``data``; a no-op update changes nothing (no revision bump)."""
        update: JobUpdate = self._validate(JobUpdate, data, entity="job")
        changes = update.model_dump(exclude_unset=True)
        new_tags = changes.pop("tags", None)
        if new_tags is not None:
            new_tags = _check_tags(new_tags)
        with self._tx() as session:
            job = jobs_repo.get_job(session, name, for_update=True)
            before = jsonable(job.model_dump(include=set(_JOB_FIELDS)))
            for field, value in changes.items():
                setattr(job, field, value)
            after = jsonable(job.model_dump(include=set(_JOB_FIELDS)))
            before_diff, after_diff = diff(before, after)
            if new_tags is not None:
                old_tags = jobs_repo.tags_by_job(session, [job.id])[job.id]
                if jobs_repo.set_tags(session, job, new_tags):
                    before_diff["tags"], after_diff["tags"] = old_tags, new_tags
            if after_diff:
                jobs_repo.touch_job(job)
                record_change(
                    self._store,
                    session,
                    action="update",
                    entity_type="job",
                    entity_key=job.name,
                    entity_id=job.id,
                    before=before_diff,
                    after=after_diff,
                )
            session.flush()
            return self.get(name)

    @requires(Role.ADMIN)
    def archive(self, name: str) -> JobPublic:
        """Hide a job from orchestrators and listings; its runs and metrics stay."""
        return self._set_archived(name, True)

    @requires(Role.ADMIN)
    def restore(self, name: str) -> JobPublic:
        """Undo :meth:`archive`."""
        return self._set_archived(name, False)

    def _set_archived(self, name: str, archived: bool) -> JobPublic:
        with self._tx() as session:
            job = jobs_repo.get_job(session, name, for_update=True)
            if job.is_archived != archived:
                job.is_archived = archived
                jobs_repo.touch_job(job)
                record_change(
                    self._store,
                    session,
                    action="archive" if archived else "restore",
                    entity_type="job",
                    entity_key=job.name,
                    entity_id=job.id,
                    before={"is_archived": not archived},
                    after={"is_archived": archived},
                )
            return self.get(name)

    @requires(Role.READER)
    def latest_executions(self, names: Iterable[str]) -> dict[str, ExecutionPublic]:
        """The most recent execution of each named job that has one, in two queries."""
        wanted_names = set(names)
        with self._tx(readonly=True) as session:
            jobs = jobs_repo.list_jobs(session, include_archived=True)
            wanted = {job.id: job.name for job in jobs if job.name in wanted_names}
            latest = executions_repo.latest_executions(session, wanted)
            return {
                wanted[job_id]: execution_public(row, job_name=wanted[job_id])
                for job_id, row in latest.items()
            }

    @requires(Role.READER)
    def latest_execution(self, name: str) -> ExecutionPublic | None:
        """The job's most recent execution (by creation), or ``None``."""
        with self._tx(readonly=True) as session:
            job = jobs_repo.get_job(session, name)
            latest = executions_repo.latest_executions(session, [job.id]).get(job.id)
            return execution_public(latest, job_name=job.name) if latest else None
