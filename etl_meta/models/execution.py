"""Executions (one orchestrator run of a job) and component executions (one step attempt)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar

import sqlalchemy as sa
from pydantic import StrictInt, computed_field
from sqlmodel import Field

from etl_meta.models.base import (
    EtlModel,
    InputModel,
    PublicModel,
    created_at_field,
    updated_at_field,
)
from etl_meta.models.enums import ExecutionStatus, Orchestrator, StepStatus
from etl_meta.models.execution_tag import MAX_RUN_TAGS, RunTagKey, RunTagValue
from etl_meta.types import JSONDocument, UTCDateTime, lenient_enum, string_enum
from etl_meta.validation import AwareDatetime, Identifier, JSONObject, SafeText

OrchestratorField = Annotated[Orchestrator, lenient_enum(Orchestrator)]
ExecutionStatusField = Annotated[ExecutionStatus, lenient_enum(ExecutionStatus)]
StepStatusField = Annotated[StepStatus, lenient_enum(StepStatus)]
MAX_ERROR_CHARS = 20_000


def _duration(started_at: datetime | None, ended_at: datetime | None) -> float | None:
    if started_at is None or ended_at is None:
        return None
    return max((ended_at - started_at) / timedelta(seconds=1), 0.0)


class Execution(EtlModel, table=True):
    """One run of a job by an orchestrator, keyed by the orchestrator's own run id."""

    __tablename__ = "execution"
    __table_args__ = (
        sa.UniqueConstraint("orchestrator", "external_run_id"),
        sa.Index("ix_execution_job_id_started_at", "job_id", "started_at"),
        sa.Index("ix_execution_job_id_id", "job_id", "id"),  # a job's newest runs
        # A run id pasted from an orchestrator's UI, whichever orchestrator it came from.
        sa.Index("ix_execution_external_run_id", "external_run_id"),
        sa.Index("ix_execution_status", "status"),
    )
    _masked_fields: ClassVar[tuple[str, ...]] = ("run_config",)

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=sa.Column(sa.ForeignKey("job.id"), nullable=False))
    orchestrator: OrchestratorField = Field(
        sa_type=string_enum(Orchestrator, "orchestrator", length=16)
    )
    external_run_id: str = Field(max_length=255)
    status: ExecutionStatusField = Field(
        sa_type=string_enum(ExecutionStatus, "execution_status", length=16)
    )
    job_revision: int | None = None
    config_versions: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    run_config: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, sa_type=sa.Text)
    parent_run_id: str | None = Field(default=None, max_length=255)
    root_run_id: str | None = Field(default=None, max_length=255)
    log_path: str | None = Field(default=None, max_length=1024)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ExecutionUpsert(InputModel):
    """What an orchestrator reports about a run. Replaying it any number of times is harmless.

    Unset fields keep their stored values; ``status`` only moves forward. ``tags`` are the run's
    tags as the orchestrator has them: new keys are added and changed values updated, even on a
    settled run, but a tag a person set (``store.executions.tag``) is never overwritten and no
    tag is ever removed this way.
    """

    _masked_fields: ClassVar[tuple[str, ...]] = ("run_config",)

    job: Identifier
    orchestrator: OrchestratorField
    external_run_id: SafeText = Field(min_length=1, max_length=255)
    status: ExecutionStatusField
    job_revision: StrictInt | None = Field(default=None, ge=1)
    config_versions: dict[Identifier, StrictInt] | None = None
    run_config: JSONObject | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    error: SafeText | None = Field(default=None, max_length=MAX_ERROR_CHARS)
    parent_run_id: SafeText | None = Field(default=None, max_length=255)
    root_run_id: SafeText | None = Field(default=None, max_length=255)
    log_path: SafeText | None = Field(default=None, max_length=1024)
    tags: dict[RunTagKey, RunTagValue] | None = Field(default=None, max_length=MAX_RUN_TAGS)


class ExecutionPublic(PublicModel):
    """A run as callers see it (``run_config`` masked)."""

    _masked_fields: ClassVar[tuple[str, ...]] = ("run_config",)

    id: int
    job_id: int
    job_name: str
    orchestrator: Orchestrator
    external_run_id: str
    status: ExecutionStatus
    job_revision: int | None
    config_versions: dict[str, Any] | None
    run_config: dict[str, Any] | None
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    parent_run_id: str | None
    root_run_id: str | None
    log_path: str | None
    created_at: datetime
    updated_at: datetime
    tags: dict[str, str] = Field(default_factory=dict)
    steps: list[StepAttemptPublic] | None = None

    # mypy cannot type a decorator over a property; pydantic's documented spelling needs this.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_seconds(self) -> float | None:
        return _duration(self.started_at, self.ended_at)


class ComponentExecution(EtlModel, table=True):
    """One attempt (1-based) of one component within one execution."""

    __tablename__ = "component_execution"
    __table_args__ = (
        sa.UniqueConstraint("execution_id", "component_id", "attempt"),
        sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
        sa.Index("ix_component_execution_component_id_started_at", "component_id", "started_at"),
    )

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    execution_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("execution.id", ondelete="CASCADE"), nullable=False)
    )
    component_id: int = Field(sa_column=sa.Column(sa.ForeignKey("component.id"), nullable=False))
    attempt: int
    status: StepStatusField = Field(sa_type=string_enum(StepStatus, "step_status", length=16))
    config_version: int | None = None
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class StepAttemptUpsert(InputModel):
    """What an orchestrator reports about one attempt of one step (``attempt`` is 1-based)."""

    component: Identifier
    attempt: StrictInt = Field(ge=1, le=10_000)
    status: StepStatusField
    config_version: StrictInt | None = Field(default=None, ge=1)
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    error: SafeText | None = Field(default=None, max_length=MAX_ERROR_CHARS)


class StepAttemptPublic(PublicModel):
    """One attempt of one step as callers see it."""

    id: int
    execution_id: int
    component_id: int
    component_name: str
    attempt: int
    status: StepStatus
    config_version: int | None
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None

    # mypy cannot type a decorator over a property; pydantic's documented spelling needs this.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_seconds(self) -> float | None:
        return _duration(self.started_at, self.ended_at)
