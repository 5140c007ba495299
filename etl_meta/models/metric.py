"""Metric points logged by components during a run."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import StrictInt
from sqlmodel import Field

from etl_meta.models.base import EtlModel, InputModel, PublicModel
from etl_meta.types import BigIntPK, UTCDateTime
from etl_meta.validation import AwareDatetime, Identifier, MetricValue

METRIC_NAME_MAX = 255


class Metric(EtlModel, table=True):
    """One numeric point: (run, component, attempt, name, step) identifies it exactly once."""

    __tablename__ = "metric"
    __table_args__ = (
        sa.UniqueConstraint("execution_id", "component_id", "attempt", "name", "step"),
        sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
        sa.Index("ix_metric_component_id_name_recorded_at", "component_id", "name", "recorded_at"),
    )

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    execution_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("execution.id", ondelete="CASCADE"), nullable=False)
    )
    component_id: int = Field(sa_column=sa.Column(sa.ForeignKey("component.id"), nullable=False))
    attempt: int = Field(default=1)
    name: str = Field(max_length=METRIC_NAME_MAX)
    step: int = Field(default=0, sa_type=sa.BigInteger)
    value: float = Field(sa_type=sa.Double)
    recorded_at: datetime = Field(sa_type=UTCDateTime)


class MetricPoint(InputModel):
    """One point to record; ``component`` is the component name within the run's job.

    Validating through this model is the convenient path. ``store.metrics.record`` also takes
    plain tuples/dicts and validates them with a tight loop, which matters at 100k points.
    """

    component: Identifier
    name: str = Field(min_length=1, max_length=METRIC_NAME_MAX)
    value: MetricValue
    attempt: StrictInt = Field(default=1, ge=1)
    step: StrictInt = Field(default=0, ge=0)
    recorded_at: AwareDatetime | None = None


class MetricPublic(PublicModel):
    """A recorded point as callers see it."""

    execution_id: int
    component_name: str
    attempt: int
    name: str
    step: int
    value: float
    recorded_at: datetime


class MetricLatest(EtlModel, table=True):
    """The latest point — highest (attempt, step) — of each metric of each run's component.

    Maintained on write, in the same transaction as the points, so "the latest value of every
    metric for the last N runs" reads a few hundred rows instead of scanning every point.
    """

    __tablename__ = "metric_latest"
    __table_args__ = (
        # Final-attempt reads look up only retried steps (analytics._select.final_attempt).
        sa.Index(
            "ix_metric_latest_retried",
            "execution_id",
            "component_id",
            "attempt",
            postgresql_where=sa.text("attempt > 1"),
            sqlite_where=sa.text("attempt > 1"),
        ),
    )

    execution_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("execution.id", ondelete="CASCADE"), primary_key=True)
    )
    component_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("component.id"), primary_key=True, index=True)
    )
    name: str = Field(sa_column=sa.Column(sa.String(METRIC_NAME_MAX), primary_key=True))
    attempt: int
    step: int = Field(sa_type=sa.BigInteger)
    value: float = Field(sa_type=sa.Double)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
