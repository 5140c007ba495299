"""``store.run_requests``: ask for a run; an orchestrator sensor launches it exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from etl_meta.access import Role, requires
from etl_meta.components.contracts import check_configuration
from etl_meta.components.overrides import resolve_configuration
from etl_meta.components.registry import UnknownComponentTypeError, get_component_type
from etl_meta.errors import ConflictError, FieldProblem, ValidationError
from etl_meta.masking import SECRET_OVERRIDE_MESSAGE, mask_value, overridden_secrets
from etl_meta.models import (
    Orchestrator,
    RunRequest,
    RunRequestCreate,
    RunRequestPublic,
    RunRequestStatus,
)
from etl_meta.repository import components as components_repo
from etl_meta.repository import jobs as jobs_repo
from etl_meta.repository import run_requests as repo
from etl_meta.repository.dialect import insert
from etl_meta.store._base import StoreAPI, record_change, relative_paths
from etl_meta.store._public import jsonable
from etl_meta.types import coerce_enum, utcnow
from etl_meta.validation import check_text, strict_int


def _refuse_secret_overrides(session: Session, job_id: int, run_config: Mapping[str, Any]) -> None:
    """Raise :class:`ValidationError` when ``run_config`` would change a component's secret.

    Compared with the stored configuration as stored (encrypted): masking shows both alike, so
    nothing is decrypted. A component the job lacks counts every key any type declares secret.
    """
    components = components_repo.components_by_name(session, job_id)
    problems = []
    for name, overrides in run_config.items():
        component = components.get(name)
        problems += [
            FieldProblem(f"run_config.{name}.{path}", SECRET_OVERRIDE_MESSAGE)
            for path in overridden_secrets(
                component.configuration if component is not None else {},
                overrides,
                component_type=component.component_type if component is not None else None,
            )
        ]
    if problems:
        raise ValidationError(problems, entity="run_request")


def _refuse_contract_breaks(session: Session, job_id: int, run_config: Mapping[str, Any]) -> None:
    """Raise :class:`ValidationError` when an override breaks its component's contract.

    Checked on the masked stored configuration with the overrides merged in: secrets only ever
    appear masked in overrides (see above), and a masked value satisfies the contract's type.
    The sandbox is checked when the step runs, where the real values are.
    """
    components = components_repo.components_by_name(session, job_id)
    problems = []
    for name, overrides in run_config.items():
        component = components.get(name)
        if component is None or not isinstance(overrides, Mapping):
            continue
        try:
            implementation = get_component_type(component.component_type)
        except UnknownComponentTypeError:
            continue  # installed only on workers: they check it when the step runs
        stored = mask_value(component.configuration, component_type=component.component_type)
        merged = resolve_configuration(stored, overrides, component_type=component.component_type)
        problems += check_configuration(implementation, merged, prefix=f"run_config.{name}.")
    if problems:
        raise ValidationError(problems, entity="run_request")


class RunRequestsAPI(StoreAPI):
    """Run requests move pending → launched → success | failed | canceled, never back."""

    namespace = "run_requests"

    @requires(Role.WRITER)
    def create(self, data: RunRequestCreate | Mapping[str, Any]) -> RunRequestPublic:
        """Ask for a run of ``data.job``.

        With a ``request_key``, asking again returns the first request instead of a second
        one (a different job under the same key is a :class:`ConflictError`).

        ``run_config`` is ``{component: {key: value}}``, overrides for this run. One that would
        change a secret (see :func:`~etl_meta.components.overrides.resolve_configuration`; only
        ``***``, or a URL secret's stored URL masked, may be echoed) raises
        :class:`ValidationError` naming each field (``run_config.load.password``) before
        anything is written.
        """
        request: RunRequestCreate = self._validate(RunRequestCreate, data, entity="run_request")
        key = request.request_key or uuid.uuid4().hex
        run_config = self._store.cipher.encrypt_document(
            request.run_config, field="run_config", entity="run_request"
        )
        with self._tx() as session:
            job = jobs_repo.get_job(session, request.job)
            if job.is_archived:
                raise ValidationError.single("job", "is archived", entity="run_request")
            _refuse_secret_overrides(session, job.id, request.run_config)
            _refuse_contract_breaks(session, job.id, request.run_config)
            now = utcnow()
            new_id = session.scalar(
                insert(session, RunRequest)
                .values(
                    job_id=job.id,
                    request_key=key,
                    status=RunRequestStatus.PENDING,
                    orchestrator=request.orchestrator,
                    run_config=run_config,
                    requested_by=self._store.actor,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["request_key"])
                .returning(RunRequest.id)
            )
            if new_id is None:
                existing = repo.find_by_key(session, key)
                assert existing is not None
                if existing.job_id != job.id:
                    raise ConflictError(
                        f"request key {key!r} is already used for another job",
                        entity="run_request",
                        field="request_key",
                    )
                return self._public(session, existing)
            row = repo.get_request(session, new_id)
            record_change(
                self._store,
                session,
                action="create",
                entity_type="run_request",
                entity_key=key,
                entity_id=row.id,
                after=jsonable(row.model_dump(include={"status", "orchestrator", "run_config"}))
                | {"job": job.name},
            )
            return self._public(session, row)

    @requires(Role.READER)
    def get(self, request_id: int) -> RunRequestPublic:
        """One request; raises :class:`~etl_meta.errors.NotFoundError`."""
        with self._tx(readonly=True) as session:
            return self._public(session, repo.get_request(session, request_id))

    @requires(Role.READER)
    def list(
        self,
        *,
        status: RunRequestStatus | str | None = None,
        orchestrator: Orchestrator | str | None = None,
        job: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[RunRequestPublic]:
        """Requests oldest first (``orchestrator`` also matches requests naming none)."""
        limit = strict_int(limit, "limit", minimum=1)
        if after_id is not None:
            strict_int(after_id, "after_id")
        with self._tx(readonly=True) as session:
            rows = repo.list_requests(
                session,
                status=coerce_enum(RunRequestStatus, status) if status else None,
                orchestrator=coerce_enum(Orchestrator, orchestrator) if orchestrator else None,
                job_id=jobs_repo.get_job(session, job).id if job else None,
                after_id=after_id,
                limit=limit,
            )
            names = jobs_repo.job_names(session, [r.job_id for r in rows])
            return [self._public(session, r, names[r.job_id]) for r in rows]

    @requires(Role.WRITER)
    def run_config(self, request_id: int, *, strict: bool = True) -> dict[str, Any]:
        """The request's run configuration, **unmasked** and decrypted, for the sensor.

        Like :meth:`ComponentsAPI.configuration`, a read that decrypts anything is audited
        (action ``decrypt``, the field paths only).

        A secret that cannot be decrypted raises :class:`~etl_meta.secrets.SecretDecryptError`
        naming the field (``strict=False``: reads as ``***`` with a warning).
        """
        decrypted: list[str] = []
        prefix = f"run_request.{request_id}.run_config"
        with self._tx(readonly=True) as session:
            stored = repo.get_request(session, request_id).run_config
        run_config = dict(
            self._store.cipher.decrypt_document(
                stored, field=prefix, strict=strict, decrypted=decrypted
            )
        )
        if decrypted:
            self._audit_decrypt(
                entity_type="run_request",
                entity_key=str(request_id),
                entity_id=request_id,
                after={"fields": relative_paths(decrypted, prefix)},
            )
        return run_config

    @requires(Role.WRITER)
    def mark_launched(
        self, request_id: int, *, orchestrator: Orchestrator | str, external_run_id: str
    ) -> RunRequestPublic:
        """Record the run launched for the request. Repeating it with the same run is a no-op."""
        check_text(external_run_id)
        orch = coerce_enum(Orchestrator, orchestrator)
        with self._tx() as session:
            row = repo.get_request(session, request_id, for_update=True)
            if row.external_run_id is not None and row.external_run_id != external_run_id:
                raise ConflictError(
                    f"run request {request_id} was already launched as {row.external_run_id!r}",
                    entity="run_request",
                    field="external_run_id",
                )
            if row.status.rank < RunRequestStatus.LAUNCHED.rank or row.external_run_id is None:
                before = jsonable(row.model_dump(include={"status", "external_run_id"}))
                if row.status.rank < RunRequestStatus.LAUNCHED.rank:
                    row.status = RunRequestStatus.LAUNCHED
                row.orchestrator = orch
                row.external_run_id = external_run_id
                row.launched_at = row.launched_at or utcnow()
                row.updated_at = utcnow()
                self._audit_transition(session, row, before)
            return self._public(session, row)

    @requires(Role.WRITER)
    def mark_finished(
        self, request_id: int, status: RunRequestStatus | str, *, error: str | None = None
    ) -> RunRequestPublic:
        """Record the request's terminal status; the first terminal status recorded wins."""
        final = coerce_enum(RunRequestStatus, status)
        if not final.is_terminal:
            raise ValidationError.single("status", "must be success, failed or canceled")
        if error is not None:
            check_text(error)
        with self._tx() as session:
            row = repo.get_request(session, request_id, for_update=True)
            if not row.status.is_terminal:
                before = jsonable(row.model_dump(include={"status", "error"}))
                row.status = final
                row.error = error
                row.ended_at = utcnow()
                row.updated_at = row.ended_at
                self._audit_transition(session, row, before)
            return self._public(session, row)

    def _audit_transition(self, session: Session, row: RunRequest, before: dict[str, Any]) -> None:
        session.flush()
        after = jsonable(row.model_dump(include=set(before)))
        record_change(
            self._store,
            session,
            action="update",
            entity_type="run_request",
            entity_key=row.request_key,
            entity_id=row.id,
            before=before,
            after=after,
        )

    @staticmethod
    def _public(session: Session, row: RunRequest, job_name: str | None = None) -> RunRequestPublic:
        name = job_name or jobs_repo.job_names(session, [row.job_id])[row.job_id]
        return RunRequestPublic.model_validate({**row.model_dump(), "job_name": name})
