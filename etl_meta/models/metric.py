"""Metric points logged by components during a run."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import StrictInt
from sqlmodel import Field

from etl_meta.models.base import EtlModel, InputModel, PublicModel, table_of
from etl_meta.types import BigIntPK, UTCDateTime
from etl_meta.validation import AwareDatetime, Identifier, MetricValue

METRIC_NAME_MAX = 255


class MetricName(EtlModel, table=True):
    """The dictionary of metric names: a point carries an integer, not the string."""

    __tablename__ = "metric_name"

    id: int = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(METRIC_NAME_MAX), nullable=False, unique=True))


class MetricSeries(EtlModel, table=True):
    """One metric of one run's component in one attempt: the points' shared key, stored once.

    ``(execution_id, component_id, name_id, attempt)`` is unique, so a replayed series is found
    rather than written again; ``(component_id, name_id, execution_id)`` serves one metric
    across runs.
    """

    __tablename__ = "metric_series"
    __table_args__ = (
        sa.UniqueConstraint("execution_id", "component_id", "name_id", "attempt"),
        sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
        sa.Index(
            "ix_metric_series_component_id_name_id", "component_id", "name_id", "execution_id"
        ),
    )

    id: int = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    execution_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("execution.id", ondelete="CASCADE"), nullable=False)
    )
    component_id: int = Field(sa_column=sa.Column(sa.ForeignKey("component.id"), nullable=False))
    name_id: int = Field(sa_column=sa.Column(sa.ForeignKey("metric_name.id"), nullable=False))
    attempt: int = Field(default=1)


class MetricPointRow(EtlModel, table=True):
    """One point of a series: ``(series_id, step)`` identifies it, so a replay writes nothing.

    On PostgreSQL the table is partitioned by ranges of ``series_id``; the ranges are listed in
    ``metric_partition``, a table only PostgreSQL stores have (etl_meta.repository.partitions).
    It has no foreign key to its series: a key would be checked on every point a ``COPY``
    writes, and points only ever leave with their series (retention deletes both).
    ``id`` is unindexed: a store-wide unique number for frames and exports (``metric_id``),
    from a sequence on PostgreSQL and from the writer, under its write lock, on SQLite.
    """

    __tablename__ = "metric_point"
    __table_args__ = (
        sa.Index("ix_metric_point_recorded_at", "recorded_at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (series_id)"},
    )

    series_id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    step: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    value: float = Field(sa_type=sa.Double)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


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


def _metric_points() -> sa.Subquery:
    point, series, name = table_of(MetricPointRow), table_of(MetricSeries), table_of(MetricName)
    return (
        sa.select(
            point.c.id,
            series.c.execution_id,
            series.c.component_id,
            series.c.attempt,
            name.c.name,
            point.c.step,
            point.c.value,
            point.c.recorded_at,
            point.c.series_id,
            series.c.name_id,
        )
        .select_from(point)
        .join(series, series.c.id == point.c.series_id)
        .join(name, name.c.id == series.c.name_id)
        .subquery("metric")
    )


#: Every point with its series' run, component, attempt and name: the columns of one row per
#: point (``id``, ``execution_id``, ``component_id``, ``attempt``, ``name``, ``step``, ``value``,
#: ``recorded_at``, plus ``series_id`` and ``name_id``), for reading with SQLAlchemy Core. Both
#: databases flatten it into the statement that uses it.
metric_points = _metric_points()
