"""``store.executions``: runs and step attempts reported by orchestrators.

Every write is an upsert on the orchestrator's own keys, and statuses only move forward, so an
orchestrator may replay any event any number of times, late or out of order. A terminal run or
attempt is settled: later events of another status change nothing, not even the audit trail
(see :func:`etl_meta.repository.executions.upsert_execution`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from etl_meta.access import Role, requires
from etl_meta.errors import ConflictError, NotFoundError, ValidationError
from etl_meta.masking import mask_value
from etl_meta.models import (
    Execution,
    ExecutionPublic,
    ExecutionStatus,
    ExecutionUpsert,
    Orchestrator,
    StepAttemptPublic,
    StepAttemptUpsert,
)
from etl_meta.models.execution_tag import RunTagsSet, TagSource
from etl_meta.repository import components as components_repo
from etl_meta.repository import executions as repo
from etl_meta.repository import jobs as jobs_repo
from etl_meta.repository import run_tags as tags_repo
from etl_meta.run_tags import mask_tags
from etl_meta.store._base import StoreAPI, record_change
from etl_meta.store._public import attempt_public, execution_public, jsonable, run_key
from etl_meta.store._run_tags import RunTagsMixin, tag_sides
from etl_meta.types import coerce_enum
from etl_meta.validation import strict_bool, strict_int

_KEY_FIELDS = {"orchestrator", "external_run_id", "attempt"}


class ExecutionsAPI(RunTagsMixin, StoreAPI):
    """Executions (runs) and their step attempts."""

    namespace = "executions"

    @requires(Role.WRITER)
    def upsert(
        self,
        data: ExecutionUpsert | Mapping[str, Any],
        *,
        steps: Iterable[StepAttemptUpsert | Mapping[str, Any]] = (),
    ) -> ExecutionPublic:
        """Record what an orchestrator knows about a run (and, optionally, its steps) at once.

        ``run_config`` and ``tags`` are masked before they are stored: the store keeps a snapshot
        for people, never the secrets in it.
        """
        run: ExecutionUpsert = self._validate(ExecutionUpsert, data, entity="execution")
        attempts: list[StepAttemptUpsert] = [
            self._validate(StepAttemptUpsert, s, entity="step attempt", prefix=f"steps.{i}.")
            for i, s in enumerate(steps)
        ]
        self._check_times(run.started_at, run.ended_at)
        for attempt in attempts:
            self._check_times(attempt.started_at, attempt.ended_at)
        with self._tx() as session:
            job = jobs_repo.get_job(session, run.job)
            values = run.model_dump(exclude={"job", "tags"}, exclude_unset=True)
            if values.get("run_config") is not None:
                values["run_config"] = mask_value(values["run_config"])
            # One lookup of the job's components for all attempts (a run has one per step try).
            components = components_repo.components_by_name(session, job.id) if attempts else {}
            row, outcome, changes = repo.upsert_execution(session, job=job, values=values)
            # The run's tags as they now stand, when known without another query.
            tags: dict[str, str] | None = {} if outcome == "created" else None
            if run.tags:
                tagged, tags = tags_repo.merge_orchestrator_tags(
                    session, row.id, mask_tags(run.tags), TagSource(row.orchestrator.value)
                )
                if tagged:
                    outcome = "updated" if outcome == "unchanged" else outcome
                    changes["tags"] = tag_sides(tagged)
            self._audit_outcome(session, "execution", run_key(row), row.id, outcome, changes, row)
            keys = {(a.component, a.attempt) for a in attempts}
            if attempts and outcome == "created" and len(keys) == len(attempts):
                # A new run's attempts are new too: one multi-row insert, not an upsert each,
                # and every audit row of the run in one insert at commit (a first reconcile
                # pass records thousands of runs this way).
                with session.no_autoflush:
                    inserted = self._insert_attempts(
                        session, row, attempts, job_name=job.name, known=components
                    )
                return self._public(
                    session, row, job.name, with_steps=True, steps=inserted, tags=tags
                )
            for attempt in attempts:
                self._upsert_attempt(session, row, attempt, job_name=job.name, known=components)
            return self._public(session, row, job.name, with_steps=bool(attempts), tags=tags)

    @requires(Role.WRITER)
    def record_attempt(
        self,
        orchestrator: Orchestrator | str,
        run_id: str,
        data: StepAttemptUpsert | Mapping[str, Any],
    ) -> StepAttemptPublic:
        """Record one attempt of one step of a run the store already knows."""
        attempt: StepAttemptUpsert = self._validate(StepAttemptUpsert, data, entity="step attempt")
        self._check_times(attempt.started_at, attempt.ended_at)
        with self._tx() as session:
            execution = self._find_row(session, orchestrator, run_id)
            row, name = self._upsert_attempt(session, execution, attempt)
            return attempt_public(row, name)

    def _insert_attempts(
        self,
        session: Session,
        execution: Execution,
        attempts: list[StepAttemptUpsert],
        *,
        job_name: str,
        known: Mapping[str, Any],
    ) -> list[tuple[Any, str]]:
        """The attempts of a run created in this transaction, each audited as created; returns
        ``(attempt, component name)`` in the order the store lists a run's attempts.
        """
        given = [
            (
                self._component(session, execution, attempt.component, job_name, known),
                attempt.model_dump(exclude={"component"}, exclude_unset=True),
            )
            for attempt in attempts
        ]
        rows = repo.insert_attempts(session, execution=execution, attempts=given)
        stored = []
        for (component, _values), row in zip(given, rows, strict=True):
            key = f"{run_key(execution)}/{component.name}#{row.attempt}"
            self._audit_outcome(session, "component_execution", key, row.id, "created", {}, row)
            stored.append((row, component.name))
        return sorted(stored, key=lambda pair: (pair[0].component_id, pair[0].attempt))

    @staticmethod
    def _component(
        session: Session,
        execution: Execution,
        name: str,
        job_name: str | None,
        known: Mapping[str, Any] | None,
    ) -> Any:
        component = (known or {}).get(name)
        if component is None:
            job_name = (
                job_name or jobs_repo.job_names(session, [execution.job_id])[execution.job_id]
            )
            component = components_repo.get_component(
                session, execution.job_id, name, job_name=job_name
            )
        return component

    def _upsert_attempt(
        self,
        session: Session,
        execution: Execution,
        attempt: StepAttemptUpsert,
        *,
        job_name: str | None = None,
        known: Mapping[str, Any] | None = None,
    ) -> tuple[Any, str]:
        component = self._component(session, execution, attempt.component, job_name, known)
        values = attempt.model_dump(exclude={"component"}, exclude_unset=True)
        row, outcome, changes = repo.upsert_attempt(
            session, execution=execution, component=component, values=values
        )
        key = f"{run_key(execution)}/{component.name}#{row.attempt}"
        self._audit_outcome(session, "component_execution", key, row.id, outcome, changes, row)
        return row, component.name

    @requires(Role.READER)
    def get(self, execution_id: int, *, with_steps: bool = False) -> ExecutionPublic:
        """The execution with the store's id; raises :class:`NotFoundError`."""
        with self._tx(readonly=True) as session:
            row = session.get(Execution, execution_id)
            if row is None:
                raise NotFoundError("execution", execution_id)
            return self._public(session, row, None, with_steps=with_steps)

    @requires(Role.READER)
    def find(
        self, orchestrator: Orchestrator | str, run_id: str, *, with_steps: bool = False
    ) -> ExecutionPublic | None:
        """The execution an orchestrator calls ``run_id``, or ``None``."""
        with self._tx(readonly=True) as session:
            row = repo.find_execution(session, coerce_enum(Orchestrator, orchestrator), run_id)
            return self._public(session, row, None, with_steps=with_steps) if row else None

    @requires(Role.READER)
    def recorded_state(
        self, orchestrator: Orchestrator | str, run_ids: Iterable[str]
    ) -> dict[str, tuple[ExecutionStatus, datetime]]:
        """``{run id: (status, updated_at)}`` for those of ``run_ids`` the store holds, in one
        query: what a reconciliation pass needs to tell a run recorded as the orchestrator has it
        from one it must write. Unknown run ids are left out.
        """
        with self._tx(readonly=True) as session:
            return repo.recorded_state(session, coerce_enum(Orchestrator, orchestrator), run_ids)

    @requires(Role.READER)
    def resolve(self, ref: str | int, *, with_steps: bool = False) -> ExecutionPublic:
        """Find an execution by the store's id or by any orchestrator's run id.

        A run id pasted from the Dagster or Airflow UI works as well as ``42``.
        """
        with self._tx(readonly=True) as session:
            row = self._resolve_row(session, ref)
            return self._public(session, row, None, with_steps=with_steps)

    @requires(Role.READER)
    def list(
        self,
        *,
        job: str | None = None,
        status: ExecutionStatus | str | None = None,
        orchestrator: Orchestrator | str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int = 50,
        with_steps: bool = False,
    ) -> list[ExecutionPublic]:
        """Executions newest first; page with ``before_id=<smallest id of the previous page>``.

        ``tags``: only runs carrying every given run tag ``key=value``.
        """
        limit = strict_int(limit, "limit", minimum=1)
        if tags is not None:
            tags = self._validate(RunTagsSet, {"tags": tags}, entity="execution").tags
        if before_id is not None:
            strict_int(before_id, "before_id")
        strict_bool(with_steps, "with_steps")
        with self._tx(readonly=True) as session:
            job_id = jobs_repo.get_job(session, job).id if job else None
            rows = repo.list_executions(
                session,
                job_id=job_id,
                status=coerce_enum(ExecutionStatus, status) if status else None,
                orchestrator=coerce_enum(Orchestrator, orchestrator) if orchestrator else None,
                since=since,
                before_id=before_id,
                tags=tags,
                limit=limit,
            )
            steps = repo.attempts_by_execution(session, [r.id for r in rows]) if with_steps else {}
            names = jobs_repo.job_names(session, [r.job_id for r in rows])
            run_tags = tags_repo.tags_by_execution(session, [r.id for r in rows])
            return [
                execution_public(
                    r,
                    job_name=names[r.job_id],
                    steps=steps.get(r.id, []) if with_steps else None,
                    tags=run_tags.get(r.id, {}),
                )
                for r in rows
            ]

    @requires(Role.READER)
    # ``builtins.list`` from here on: in this class, ``list`` is the method above.
    def attempts(self, execution_id: int) -> builtins.list[StepAttemptPublic]:
        """Every attempt of every step of the execution."""
        with self._tx(readonly=True) as session:
            rows = repo.attempts_by_execution(session, [execution_id]).get(execution_id, [])
            return [attempt_public(attempt, name) for attempt, name in rows]

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _resolve_row(session: Session, ref: str | int, *, for_update: bool = False) -> Execution:
        matches = list(repo.find_by_run_id(session, str(ref)))
        if not matches and str(ref).isdigit():
            row = session.get(Execution, int(ref))
            matches = [row] if row is not None else []
        if not matches:
            raise NotFoundError("execution", ref)
        if len(matches) > 1:
            raise ConflictError(
                f"run id {ref!r} is known to several orchestrators; use find(orchestrator, id)",
                entity="execution",
            )
        if for_update:  # writers of one run's tags take turns on the run's row
            session.refresh(matches[0], with_for_update=True)
        return matches[0]

    def _find_row(
        self, session: Session, orchestrator: Orchestrator | str, run_id: str
    ) -> Execution:
        row = repo.find_execution(session, coerce_enum(Orchestrator, orchestrator), run_id)
        if row is None:
            raise NotFoundError("execution", f"{orchestrator}:{run_id}")
        return row

    @staticmethod
    def _check_times(started_at: datetime | None, ended_at: datetime | None) -> None:
        if started_at and ended_at and ended_at < started_at:
            raise ValidationError.single("ended_at", "must not be before started_at")

    def _audit_outcome(
        self,
        session: Session,
        entity_type: str,
        key: str,
        entity_id: int | None,
        outcome: str,
        changes: dict[str, Any],
        row: Any,
    ) -> None:
        if outcome == "unchanged":
            return
        if outcome == "created":
            after = jsonable(row.model_dump(exclude={"id", "created_at", "updated_at"}))
            if "tags" in changes:
                after["tags"] = changes["tags"][1]
            before = None
        else:
            changed = {k: v for k, v in changes.items() if k not in _KEY_FIELDS}
            before = jsonable({k: old for k, (old, _new) in changed.items()})
            after = jsonable({k: new for k, (_old, new) in changed.items()})
        record_change(
            self._store,
            session,
            action="create" if outcome == "created" else "update",
            entity_type=entity_type,
            entity_key=key,
            entity_id=entity_id,
            before=before,
            after=after,
        )

    def _public(
        self,
        session: Session,
        row: Execution,
        job_name: str | None,
        *,
        with_steps: bool,
        steps: builtins.list[tuple[Any, str]] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ExecutionPublic:
        """``steps`` and ``tags``: when the caller has them already (``steps`` in order)."""
        if with_steps and steps is None:
            steps = repo.attempts_by_execution(session, [row.id]).get(row.id, [])
        name = job_name or jobs_repo.job_names(session, [row.job_id])[row.job_id]
        if tags is None:
            tags = tags_repo.tags_by_execution(session, [row.id]).get(row.id, {})
        return execution_public(row, job_name=name, steps=steps, tags=tags)
