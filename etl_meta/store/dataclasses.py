"""``store.dataclasses``: the shapes of data components exchange."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etl_meta.access import Role, requires
from etl_meta.errors import AlreadyExistsError
from etl_meta.models import Dataclass, DataclassCreate, DataclassPublic, DataclassUpdate
from etl_meta.repository import dataclasses as repo
from etl_meta.store._base import StoreAPI, diff, record_change
from etl_meta.store._public import jsonable
from etl_meta.types import utcnow

_FIELDS = ("dataclass_type", "schema_definition", "validation_rules", "description")
_VERSIONED = {"schema_definition", "validation_rules"}


class DataclassesAPI(StoreAPI):
    """Dataclasses: named, versioned schemas with validation rules."""

    namespace = "dataclasses"

    @requires(Role.ADMIN)
    def create(self, data: DataclassCreate | Mapping[str, Any]) -> DataclassPublic:
        """Create a dataclass; raises :class:`AlreadyExistsError` for a taken name."""
        definition: DataclassCreate = self._validate(DataclassCreate, data, entity="dataclass")
        with self._tx() as session:
            if repo.find_dataclass(session, definition.name) is not None:
                raise AlreadyExistsError("dataclass", definition.name)
            row = Dataclass.model_validate(definition.model_dump())
            session.add(row)
            session.flush()
            record_change(
                self._store,
                session,
                action="create",
                entity_type="dataclass",
                entity_key=row.name,
                entity_id=row.id,
                after=jsonable(row.model_dump(exclude={"id"})),
            )
            return DataclassPublic.model_validate(row.model_dump())

    @requires(Role.READER)
    def get(self, name: str) -> DataclassPublic:
        """One dataclass; raises :class:`~etl_meta.errors.NotFoundError`."""
        with self._tx(readonly=True) as session:
            return DataclassPublic.model_validate(repo.get_dataclass(session, name).model_dump())

    @requires(Role.READER)
    def list(
        self, *, include_archived: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[DataclassPublic]:
        """Dataclasses ordered by name."""
        with self._tx(readonly=True) as session:
            rows = repo.list_dataclasses(
                session, include_archived=include_archived, limit=limit, offset=offset
            )
            return [DataclassPublic.model_validate(row.model_dump()) for row in rows]

    @requires(Role.ADMIN)
    def update(self, name: str, data: DataclassUpdate | Mapping[str, Any]) -> DataclassPublic:
        """Change the fields set in ``data``; a new schema or rules bump ``version``."""
        update: DataclassUpdate = self._validate(DataclassUpdate, data, entity="dataclass")
        changes = update.model_dump(exclude_unset=True)
        with self._tx() as session:
            row = repo.get_dataclass(session, name)
            before = jsonable(row.model_dump(include=set(_FIELDS)))
            for field, value in changes.items():
                setattr(row, field, value)
            before_diff, after_diff = diff(before, jsonable(row.model_dump(include=set(_FIELDS))))
            if after_diff:
                if _VERSIONED & after_diff.keys():
                    row.version += 1
                row.updated_at = utcnow()
                record_change(
                    self._store,
                    session,
                    action="update",
                    entity_type="dataclass",
                    entity_key=row.name,
                    entity_id=row.id,
                    before=before_diff,
                    after=after_diff,
                )
            session.flush()
            return DataclassPublic.model_validate(row.model_dump())

    @requires(Role.ADMIN)
    def archive(self, name: str) -> DataclassPublic:
        """Hide a dataclass from listings; existing links stay, new ones are refused."""
        return self._set_archived(name, True)

    @requires(Role.ADMIN)
    def restore(self, name: str) -> DataclassPublic:
        """Undo :meth:`archive`."""
        return self._set_archived(name, False)

    def _set_archived(self, name: str, archived: bool) -> DataclassPublic:
        with self._tx() as session:
            row = repo.get_dataclass(session, name)
            if row.is_archived != archived:
                row.is_archived = archived
                row.updated_at = utcnow()
                record_change(
                    self._store,
                    session,
                    action="archive" if archived else "restore",
                    entity_type="dataclass",
                    entity_key=row.name,
                    entity_id=row.id,
                    before={"is_archived": not archived},
                    after={"is_archived": archived},
                )
            session.flush()
            return DataclassPublic.model_validate(row.model_dump())
