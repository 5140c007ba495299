"""What every entity namespace of the store shares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pydantic

from etl_meta.repository import audit as audit_repo
from etl_meta.store._errors import validate_input

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from etl_meta.store.core import MetadataStore


class StoreAPI:
    """Base of ``store.jobs``, ``store.components``, …: access to the store's transaction."""

    #: The attribute name on the store (``jobs``, ``components``, ...), for messages and audit.
    namespace: str = ""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def _tx(self, *, readonly: bool = False) -> Any:
        return self._store.transaction(readonly=readonly)

    def _validate(
        self, model: type[pydantic.BaseModel], data: Any, *, entity: str, prefix: str = ""
    ) -> Any:
        settings = self._store.settings
        context = {
            "max_json_bytes": settings.max_json_bytes,
            "max_json_depth": settings.max_json_depth,
        }
        return validate_input(model, data, entity=entity, context=context, prefix=prefix)

    def _audit(
        self,
        session: Session,
        *,
        action: str,
        entity_type: str,
        entity_key: str,
        entity_id: int | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        component_type: str | None = None,
    ) -> None:
        audit_repo.record_event(
            session,
            actor=self._store.actor,
            action=action,
            entity_type=entity_type,
            entity_key=entity_key,
            entity_id=entity_id,
            before=before,
            after=after,
            component_type=component_type,
        )

    def _audit_decrypt(
        self, *, entity_type: str, entity_key: str, entity_id: int | None, after: dict[str, Any]
    ) -> None:
        """Record that secrets were decrypted for the caller (paths only, never values)."""
        with self._tx() as session:
            self._audit(
                session,
                action="decrypt",
                entity_type=entity_type,
                entity_key=entity_key,
                entity_id=entity_id,
                after=after,
            )


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys whose values differ, as ``(before, after)`` restricted to those keys."""
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def relative_paths(paths: Iterable[str], prefix: str) -> list[str]:
    """``job.c.configuration.db.password`` → ``db.password``: the paths an audit event names."""
    return [path.removeprefix(prefix).removeprefix(".") for path in paths]
