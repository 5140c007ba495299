"""``store.audit``: read the trail every change through the store leaves."""

from __future__ import annotations

from datetime import datetime

from etl_meta.access import Role, requires
from etl_meta.models import AuditEventPublic
from etl_meta.repository import audit as repo
from etl_meta.store._base import StoreAPI
from etl_meta.validation import strict_int


class AuditAPI(StoreAPI):
    """The audit trail, newest first. Values in ``before``/``after`` are masked."""

    namespace = "audit"

    @requires(Role.READER)
    def list(
        self,
        *,
        entity_type: str | None = None,
        entity_key: str | None = None,
        entity_id: int | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEventPublic]:
        """Events matching every given filter; page with ``before_id=<last id seen>``."""
        limit = strict_int(limit, "limit", minimum=1)
        for name, value in (("entity_id", entity_id), ("before_id", before_id)):
            if value is not None:
                strict_int(value, name)
        with self._tx(readonly=True) as session:
            rows = repo.list_events(
                session,
                entity_type=entity_type,
                entity_key=entity_key,
                entity_id=entity_id,
                action=action,
                actor=actor,
                since=since,
                before_id=before_id,
                limit=limit,
            )
            return [AuditEventPublic.model_validate(row.model_dump()) for row in rows]
