"""``store.retention``: the stored retention policies — one default, per-job overrides.

Every change is versioned (``revision``) and audited like a job's (``entity_type
"retention_policy"``, key ``default`` or the job's name); setting what is already stored writes
nothing, not even an audit event. The pass that applies the policies is
``store.maintenance.apply_retention`` (:mod:`etl_meta.store.retention_pass`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from etl_meta.access import Role, requires
from etl_meta.errors import NotFoundError
from etl_meta.models import RetentionPolicy, RetentionPolicyPublic
from etl_meta.models.retention import RetentionDefaultSet, RetentionOverrideSet
from etl_meta.repository import jobs as jobs_repo
from etl_meta.repository import retention as repo
from etl_meta.store._base import StoreAPI, diff, record_change
from etl_meta.types import utcnow

#: The audit key of the default policy (job names are identifiers: no clash with a job).
DEFAULT_KEY = "default"


@dataclass(frozen=True)
class EffectivePolicy:
    """What applies to one job: its override over the default. ``None`` fields: no policy."""

    job: str
    raw_days: int | None
    rollup_days: int | None
    archive: bool
    legal_hold: bool
    hold_reason: str | None


def _public(policy: RetentionPolicy, job: str | None) -> RetentionPolicyPublic:
    return RetentionPolicyPublic(
        job=job,
        raw_days=policy.raw_days,
        rollup_days=policy.rollup_days,
        archive=policy.is_archiving,
        legal_hold=policy.has_legal_hold,
        hold_reason=policy.hold_reason,
        revision=policy.revision,
        updated_at=policy.updated_at,
    )


def _document(policy: RetentionPolicy) -> dict[str, Any]:
    return {
        "raw_days": policy.raw_days,
        "rollup_days": policy.rollup_days,
        "archive": policy.is_archiving,
        "legal_hold": policy.has_legal_hold,
        "hold_reason": policy.hold_reason,
    }


def effective(
    default: RetentionPolicy | None, override: RetentionPolicy | None, job: str
) -> EffectivePolicy:
    """``override`` over ``default`` for ``job``: an override's NULL inherits the default's."""

    def pick(field: str) -> Any:
        value = getattr(override, field) if override is not None else None
        if value is None and default is not None:
            value = getattr(default, field)
        return value

    return EffectivePolicy(
        job=job,
        raw_days=pick("raw_days"),
        rollup_days=pick("rollup_days"),
        archive=bool(pick("is_archiving")),
        legal_hold=bool(override is not None and override.has_legal_hold),
        hold_reason=override.hold_reason if override is not None else None,
    )


class RetentionAPI(StoreAPI):
    """Retention policies. ``etl-meta apply`` sets them from a definitions file's ``retention:``."""

    namespace = "retention"

    @requires(Role.READER)
    def list(self) -> list[RetentionPolicyPublic]:
        """Every stored policy: the default first (``job`` ``None``), then overrides by job."""
        with self._tx(readonly=True) as session:
            return [_public(policy, job) for policy, job in repo.list_policies(session)]

    @requires(Role.READER)
    def effective(self, job: str) -> EffectivePolicy:
        """The policy that applies to ``job`` (raises :class:`NotFoundError` for no such job)."""
        with self._tx(readonly=True) as session:
            job_row = jobs_repo.get_job(session, job)
            return effective(
                repo.find_policy(session, None), repo.find_policy(session, job_row.id), job
            )

    @requires(Role.ADMIN)
    def set_default(self, data: RetentionDefaultSet | Mapping[str, Any]) -> bool:
        """Store the default policy; returns whether anything changed.

        Raises:
            ValidationError: a field is invalid (``error.field`` names it).
        """
        policy_in: RetentionDefaultSet = self._validate(
            RetentionDefaultSet, data, entity="retention_policy"
        )
        values = policy_in.model_dump() | {"legal_hold": False, "hold_reason": None}
        with self._tx() as session:
            return self._put(session, None, DEFAULT_KEY, values)

    @requires(Role.ADMIN)
    def set_job(self, job: str, data: RetentionOverrideSet | Mapping[str, Any]) -> bool:
        """Store ``job``'s override (``None`` fields inherit); returns whether anything changed.

        Raises:
            NotFoundError: no job ``job``.
            ValidationError: a field is invalid, or a legal hold without a reason.
        """
        policy_in: RetentionOverrideSet = self._validate(
            RetentionOverrideSet, data, entity="retention_policy"
        )
        with self._tx() as session:
            job_row = jobs_repo.get_job(session, job)
            return self._put(session, job_row.id, job, policy_in.model_dump())

    @requires(Role.ADMIN)
    def remove_default(self) -> bool:
        """Delete the default policy (jobs without an override are then kept forever)."""
        with self._tx() as session:
            return self._remove(session, None, DEFAULT_KEY)

    @requires(Role.ADMIN)
    def remove_job(self, job: str) -> bool:
        """Delete ``job``'s override (the default applies again); whether there was one."""
        with self._tx() as session:
            job_row = jobs_repo.find_job(session, job)
            if job_row is None:
                raise NotFoundError("job", job)
            return self._remove(session, job_row.id, job)

    def _put(self, session: Session, job_id: int | None, key: str, values: dict[str, Any]) -> bool:
        current = repo.find_policy(session, job_id)
        columns = {
            "raw_days": values["raw_days"],
            "rollup_days": values["rollup_days"],
            "is_archiving": values["archive"],
            "has_legal_hold": values["legal_hold"],
            "hold_reason": values["hold_reason"],
        }
        if current is None:
            policy = RetentionPolicy(job_id=job_id, is_default=job_id is None, **columns)
            session.add(policy)
            session.flush()
            record_change(
                self._store,
                session,
                action="create",
                entity_type="retention_policy",
                entity_key=key,
                entity_id=policy.id,
                after=_document(policy) | {"revision": policy.revision},
            )
            return True
        before = _document(current)
        for name, value in columns.items():
            setattr(current, name, value)
        old, new = diff(before, _document(current))
        if not new:
            return False  # unchanged: no revision bump, no audit event
        current.revision += 1
        current.updated_at = utcnow()
        session.flush()
        record_change(
            self._store,
            session,
            action="update",
            entity_type="retention_policy",
            entity_key=key,
            entity_id=current.id,
            before=old,
            after=new | {"revision": current.revision},
        )
        return True

    def _remove(self, session: Session, job_id: int | None, key: str) -> bool:
        current = repo.find_policy(session, job_id)
        if current is None:
            return False
        record_change(
            self._store,
            session,
            action="delete",
            entity_type="retention_policy",
            entity_key=key,
            entity_id=current.id,
            before=_document(current) | {"revision": current.revision},
        )
        session.delete(current)
        session.flush()
        return True
