"""Where a reconciliation left off: one small JSON document per named cursor.

``etl-meta airflow reconcile`` keeps its position in Airflow's record here (``airflow.reconcile``),
so any worker can run the next pass and a new worker resumes where the last one stopped. A cursor
is bookkeeping, not a record of a run: its writes are not audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field

from etl_meta.models.base import EtlModel, PublicModel, updated_at_field
from etl_meta.types import JSONDocument

#: Longest cursor name (``<orchestrator>.<purpose>``).
CURSOR_NAME_MAX = 200


class SyncCursor(EtlModel, table=True):
    __tablename__ = "sync_cursor"

    name: str = Field(primary_key=True, max_length=CURSOR_NAME_MAX)
    value: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDocument, nullable=False)
    updated_at: datetime = updated_at_field()


class SyncCursorPublic(PublicModel):
    name: str
    value: dict[str, Any]
    updated_at: datetime
