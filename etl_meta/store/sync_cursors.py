"""``store.sync_cursors``: where each reconciliation left off, kept in the store itself.

A reconciliation (``etl-meta airflow reconcile``) may run on any worker; keeping its cursor in the
store means the next pass, wherever it runs, starts where the last one ended::

    cursor = store.sync_cursors.get("airflow.reconcile") or {}
    ...
    store.sync_cursors.set("airflow.reconcile", {"updated_at_gte": "2026-12-07T08:00:00+00:00"})

Values are small JSON objects. Cursor writes are bookkeeping and are not audited: a pass that
records nothing new leaves the audit trail untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from etl_meta.access import Role, requires
from etl_meta.errors import ValidationError
from etl_meta.models import SyncCursorPublic
from etl_meta.models.sync_cursor import CURSOR_NAME_MAX
from etl_meta.repository import sync_cursors as repo
from etl_meta.store._base import StoreAPI
from etl_meta.types import utcnow
from etl_meta.validation import JSONObject


class SyncCursorsAPI(StoreAPI):
    """Named JSON cursors of the reconciliations."""

    namespace = "sync_cursors"

    @requires(Role.READER)
    def get(self, name: str) -> dict[str, Any] | None:
        """The value of cursor ``name``, or ``None`` when no pass has saved it yet."""
        with self._tx(readonly=True) as session:
            row = repo.find_cursor(session, _checked_name(name))
            return dict(row.value) if row is not None else None

    @requires(Role.WRITER)
    def set(self, name: str, value: Mapping[str, Any]) -> None:
        """Save ``value`` (a JSON object within the store's size limits) as cursor ``name``."""
        if not isinstance(value, Mapping):
            raise ValidationError.single("value", "must be a JSON object", entity="sync_cursor")
        checked = self._validate(_CursorValue, {"value": dict(value)}, entity="sync_cursor")
        with self._tx() as session:
            repo.save_cursor(session, name=_checked_name(name), value=checked.value, now=utcnow())

    @requires(Role.READER)
    def list(self) -> list[SyncCursorPublic]:
        """Every cursor, by name."""
        with self._tx(readonly=True) as session:
            return [SyncCursorPublic.model_validate(row) for row in repo.list_cursors(session)]


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > CURSOR_NAME_MAX:
        raise ValidationError.single(
            "name", f"must be a non-empty string of at most {CURSOR_NAME_MAX} characters"
        )
    return name


class _CursorValue(pydantic.BaseModel):
    value: JSONObject
