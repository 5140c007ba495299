"""Retention policies (one default, per-job overrides with legal holds) and daily metric rollups.

A policy says how long a job's runs keep their raw metric points (``raw_days``), how much longer
the runs keep their daily rollups (``rollup_days``), and whether the runs are archived to Parquet
before they are deleted. ``docs/retention.md`` explains the pass that applies them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import pydantic
import sqlalchemy as sa
from pydantic import AfterValidator, StrictBool, StrictInt, StringConstraints
from sqlmodel import Field

from etl_meta.models.base import (
    EtlModel,
    InputModel,
    PublicModel,
    created_at_field,
    updated_at_field,
)
from etl_meta.models.metric import METRIC_NAME_MAX
from etl_meta.types import BigIntPK
from etl_meta.validation import check_text

#: Longest a policy may keep anything, in days (100 years): a bound, not a recommendation.
MAX_RETENTION_DAYS = 36_500
#: Longest legal-hold reason.
HOLD_REASON_MAX = 1000


class RetentionPolicy(EtlModel, table=True):
    """The default policy (``job_id`` NULL, at most one) or one job's override.

    In an override, a NULL ``raw_days``, ``rollup_days`` or ``is_archiving`` inherits the
    default's value. ``has_legal_hold`` exists on overrides only: it suspends every deletion of
    the job's runs, points and rollups.
    """

    __tablename__ = "retention_policy"
    __table_args__ = (
        sa.UniqueConstraint("job_id"),
        # At most one default: a partial unique index (both dialects have them, see 0010).
        sa.Index(
            "ix_retention_policy_is_default",
            "is_default",
            unique=True,
            postgresql_where=sa.text("is_default"),
            sqlite_where=sa.text("is_default"),
        ),
        sa.CheckConstraint("is_default = (job_id IS NULL)", name="default_has_no_job"),
        sa.CheckConstraint(
            "NOT is_default OR (raw_days IS NOT NULL AND rollup_days IS NOT NULL "
            "AND is_archiving IS NOT NULL AND NOT has_legal_hold)",
            name="default_complete",
        ),
        sa.CheckConstraint(f"raw_days BETWEEN 1 AND {MAX_RETENTION_DAYS}", name="raw_days_range"),
        sa.CheckConstraint(
            f"rollup_days BETWEEN 0 AND {MAX_RETENTION_DAYS}", name="rollup_days_range"
        ),
        sa.CheckConstraint("NOT has_legal_hold OR hold_reason IS NOT NULL", name="hold_has_reason"),
    )

    id: int = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    job_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.ForeignKey("job.id", ondelete="CASCADE"), nullable=True),
    )
    is_default: bool = Field(default=False, nullable=False)
    raw_days: int | None = Field(default=None)
    rollup_days: int | None = Field(default=None)
    #: Write the runs to Parquet (under ``ETL_META_RETENTION_ARCHIVE_DIR``) before deleting them.
    is_archiving: bool | None = Field(default=None)
    has_legal_hold: bool = Field(default=False, nullable=False)
    hold_reason: str | None = Field(default=None, max_length=HOLD_REASON_MAX)
    #: Bumped on every change, as a job's revision is.
    revision: int = Field(default=1, nullable=False)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class RetentionPolicyPublic(PublicModel):
    """A stored policy as callers see it: ``job`` is ``None`` for the default."""

    job: str | None
    raw_days: int | None
    rollup_days: int | None
    archive: bool | None
    legal_hold: bool
    hold_reason: str | None
    revision: int
    updated_at: datetime


class MetricRollup(EtlModel, table=True):
    """The daily (UTC) summary of one metric of one step attempt of one run.

    Written by the retention pass just before the raw points it summarises are deleted; the
    key is the raw point's key with ``step`` replaced by ``day``. ``first_value``/``last_value``
    are the values at the lowest and highest step recorded that day.
    """

    __tablename__ = "metric_rollup"
    __table_args__ = (
        sa.CheckConstraint("point_count >= 1", name="point_count_positive"),
        sa.Index("ix_metric_rollup_component_id_name_day", "component_id", "name", "day"),
    )

    execution_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("execution.id", ondelete="CASCADE"), primary_key=True)
    )
    component_id: int = Field(sa_column=sa.Column(sa.ForeignKey("component.id"), primary_key=True))
    attempt: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(METRIC_NAME_MAX), primary_key=True))
    day: date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    point_count: int = Field(sa_type=sa.BigInteger)
    min_value: float = Field(sa_type=sa.Double)
    max_value: float = Field(sa_type=sa.Double)
    sum_value: float = Field(sa_type=sa.Double)
    first_step: int = Field(sa_type=sa.BigInteger)
    first_value: float = Field(sa_type=sa.Double)
    last_step: int = Field(sa_type=sa.BigInteger)
    last_value: float = Field(sa_type=sa.Double)


RetentionDays = Annotated[StrictInt, pydantic.Field(ge=1, le=MAX_RETENTION_DAYS)]
RollupDays = Annotated[StrictInt, pydantic.Field(ge=0, le=MAX_RETENTION_DAYS)]
HoldReason = Annotated[
    str, StringConstraints(min_length=1, max_length=HOLD_REASON_MAX), AfterValidator(check_text)
]


def check_hold_reason(value: str | None, info: pydantic.ValidationInfo) -> str | None:
    """``hold_reason``'s rule: a legal hold needs a reason, and only a legal hold has one."""
    held = info.data.get("legal_hold")
    if held and value is None:
        raise ValueError("a legal hold needs a reason")
    if held is False and value is not None:
        raise ValueError("only a legal hold has a reason")
    return value


class RetentionDefaultSet(InputModel):
    """What ``store.retention.set_default`` takes: the policy of every job without an override."""

    raw_days: RetentionDays
    rollup_days: RollupDays
    archive: StrictBool = False


class RetentionOverrideSet(InputModel):
    """What ``store.retention.set_job`` takes: one job's override; ``None`` inherits the default.

    ``legal_hold`` suspends every deletion for the job and needs a ``hold_reason``.
    """

    raw_days: RetentionDays | None = None
    rollup_days: RollupDays | None = None
    archive: StrictBool | None = None
    legal_hold: StrictBool = False
    hold_reason: HoldReason | None = pydantic.Field(default=None, validate_default=True)

    _reason_with_hold = pydantic.field_validator("hold_reason")(check_hold_reason)
