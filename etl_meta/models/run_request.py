"""Runs asked for through the store; an orchestrator sensor turns each into exactly one run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import sqlalchemy as sa
from sqlmodel import Field

from etl_meta.models.base import (
    EtlModel,
    InputModel,
    PublicModel,
    created_at_field,
    updated_at_field,
)
from etl_meta.models.enums import Orchestrator, RunRequestStatus
from etl_meta.types import JSONDocument, UTCDateTime, lenient_enum, string_enum
from etl_meta.validation import Identifier, JSONObject, SafeText

RunRequestStatusField = Annotated[RunRequestStatus, lenient_enum(RunRequestStatus)]


class RunRequest(EtlModel, table=True):
    __tablename__ = "run_request"
    __table_args__ = (
        sa.UniqueConstraint("request_key"),
        sa.Index("ix_run_request_status_id", "status", "id"),
    )
    _masked_fields: ClassVar[tuple[str, ...]] = ("run_config",)

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=sa.Column(sa.ForeignKey("job.id"), nullable=False))
    request_key: str = Field(max_length=255)
    status: RunRequestStatusField = Field(
        sa_type=string_enum(RunRequestStatus, "run_request_status", length=16)
    )
    orchestrator: Orchestrator | None = Field(
        default=None, sa_type=string_enum(Orchestrator, "orchestrator", length=16)
    )
    run_config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDocument)
    requested_by: str = Field(max_length=200)
    external_run_id: str | None = Field(default=None, max_length=255)
    error: str | None = Field(default=None, sa_type=sa.Text)
    launched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class RunRequestCreate(InputModel):
    """Ask for a run of ``job``. A repeated ``request_key`` returns the first request."""

    _masked_fields: ClassVar[tuple[str, ...]] = ("run_config",)

    job: Identifier
    request_key: SafeText | None = Field(default=None, min_length=1, max_length=255)
    orchestrator: Annotated[Orchestrator, lenient_enum(Orchestrator)] | None = None
    run_config: JSONObject = Field(default_factory=dict)


class RunRequestPublic(PublicModel):
    _masked_fields: ClassVar[tuple[str, ...]] = ("run_config",)

    id: int
    job_id: int
    job_name: str
    request_key: str
    status: RunRequestStatus
    orchestrator: Orchestrator | None
    run_config: dict[str, Any]
    requested_by: str
    external_run_id: str | None
    error: str | None
    launched_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
