"""Raw metric points ↔ daily rollups: the only module that reads or deletes raw points for
retention and for daily reads.

Three things touch the raw points (``metric_point``, through their ``metric_series``) here and
nowhere else in the retention feature:

* :func:`daily_aggregates` — per (run, component, attempt, name, UTC day): count, min, max, sum
  and the values at the first and last step, computed from raw points with one GROUP BY;
* :func:`roll_up_runs` — that aggregate written into ``metric_rollup`` with one INSERT…SELECT;
* :func:`delete_raw_points` — the raw points of given runs, deleted (the series stay: they
  name what the rollups summarise; partitions this empties are dropped afterwards by
  :func:`etl_meta.repository.partitions.drop_expired`);

plus :func:`has_raw_points` and :func:`count_raw_points`, which only look. Swapping the raw point
storage means rewriting this module; everything else reads ``metric_rollup`` or runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.models import Execution, MetricName, MetricPointRow, MetricRollup, MetricSeries
from etl_meta.models.base import table_of
from etl_meta.repository.dialect import dialect_name, insert

#: The columns of a daily aggregate, in ``metric_rollup``'s order.
AGGREGATE_COLUMNS: tuple[str, ...] = (
    "execution_id",
    "component_id",
    "attempt",
    "name",
    "day",
    "point_count",
    "min_value",
    "max_value",
    "sum_value",
    "first_step",
    "first_value",
    "last_step",
    "last_value",
)


def _utc_day(dialect: str, column: Any) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        # timestamptz → the UTC wall clock → its date; independent of the session time zone.
        return sa.cast(sa.func.timezone(sa.literal_column("'UTC'"), column), sa.Date)
    # SQLite stores UTC as ISO text (etl_meta.types.UTCDateTime); date() keeps 'YYYY-MM-DD'.
    return sa.func.date(column)


point, series, metric_name = (
    table_of(MetricPointRow),
    table_of(MetricSeries),
    table_of(MetricName),
)


def _series_of(
    run_ids: Sequence[int] | sa.Select[Any] | None, names: Sequence[str] | None
) -> sa.Select[Any]:
    """The ids of the series of ``run_ids`` (all runs when ``None``), of ``names`` if given."""
    found = sa.select(series.c.id)
    if run_ids is not None:
        found = found.where(series.c.execution_id.in_(run_ids))
    if names is not None:
        found = found.join(metric_name, metric_name.c.id == series.c.name_id).where(
            metric_name.c.name.in_(list(names))
        )
    return found


def daily_aggregates(
    dialect: str,
    run_ids: Sequence[int] | sa.Select[Any] | None,
    names: Sequence[str] | None = None,
) -> sa.Select[Any]:
    """One row per (run, component, attempt, name, UTC day) of the raw points of ``run_ids``
    (all runs when ``None``), of the metrics ``names`` if given.

    Columns are :data:`AGGREGATE_COLUMNS`. First and last values are those at the lowest and
    highest step of the day (a step is unique within a series: one metric of one attempt).
    Grouped by series, whose keys are joined once per group rather than once per point.
    """
    day = _utc_day(dialect, point.c.recorded_at)
    groups = (
        sa.select(
            point.c.series_id,
            day.label("day"),
            sa.func.count().label("point_count"),
            sa.func.min(point.c.value).label("min_value"),
            sa.func.max(point.c.value).label("max_value"),
            sa.func.sum(point.c.value).label("sum_value"),
            sa.func.min(point.c.step).label("first_step"),
            sa.func.max(point.c.step).label("last_step"),
        )
        .where(point.c.series_id.in_(_series_of(run_ids, names)))
        .group_by(point.c.series_id, day)
        .subquery("daily")
    )
    first, last = point.alias("first_point"), point.alias("last_point")
    return (
        sa.select(
            series.c.execution_id,
            series.c.component_id,
            series.c.attempt,
            metric_name.c.name,
            *(groups.c[name] for name in AGGREGATE_COLUMNS[4:9]),
            groups.c.first_step,
            first.c.value.label("first_value"),
            groups.c.last_step,
            last.c.value.label("last_value"),
        )
        .select_from(groups)
        .join(series, series.c.id == groups.c.series_id)
        .join(metric_name, metric_name.c.id == series.c.name_id)
        .join(
            first,
            sa.and_(first.c.series_id == groups.c.series_id, first.c.step == groups.c.first_step),
        )
        .join(
            last, sa.and_(last.c.series_id == groups.c.series_id, last.c.step == groups.c.last_step)
        )
        # SQLite needs a WHERE before ON CONFLICT in INSERT…SELECT (else it parses a join).
        .where(sa.true())
    )


def roll_up_runs(session: Session, ids: Sequence[int]) -> int:
    """Write the daily rollups of every raw point of the runs ``ids``; returns rows written.

    A rollup that already exists (points recorded into a run after it was rolled up) is merged:
    counts and sums add up, min/max widen, first/last follow the lower/higher step.
    """
    if not ids:
        return 0
    source = daily_aggregates(dialect_name(session), list(ids))
    statement = insert(session, MetricRollup).from_select(list(AGGREGATE_COLUMNS), source)
    table, new = MetricRollup.__table__, statement.excluded  # type: ignore[attr-defined]

    def pick(condition: Any, when_new: Any, otherwise: Any) -> Any:
        return sa.case((condition, when_new), else_=otherwise)

    statement = statement.on_conflict_do_update(
        index_elements=list(AGGREGATE_COLUMNS[:5]),
        set_={
            "point_count": table.c.point_count + new.point_count,
            "sum_value": table.c.sum_value + new.sum_value,
            "min_value": pick(new.min_value < table.c.min_value, new.min_value, table.c.min_value),
            "max_value": pick(new.max_value > table.c.max_value, new.max_value, table.c.max_value),
            "first_value": pick(
                new.first_step < table.c.first_step, new.first_value, table.c.first_value
            ),
            "first_step": pick(
                new.first_step < table.c.first_step, new.first_step, table.c.first_step
            ),
            "last_value": pick(
                new.last_step > table.c.last_step, new.last_value, table.c.last_value
            ),
            "last_step": pick(new.last_step > table.c.last_step, new.last_step, table.c.last_step),
        },
    )
    # Counted through RETURNING: psycopg reports no rowcount for this INSERT…SELECT.
    returning = statement.returning(table.c.execution_id)
    return len(session.connection().execute(returning).all())


def delete_raw_points(session: Session, ids: Sequence[int]) -> int:
    """Delete every raw point of the runs ``ids``; returns how many.

    The seam for partitioned storage: there, whole partitions older than the horizon are
    detached or dropped instead, and this deletes only what straddles a partition boundary.
    """
    if not ids:
        return 0
    result = session.connection().execute(
        sa.delete(point).where(point.c.series_id.in_(_series_of(list(ids), None)))
    )
    return max(result.rowcount, 0)


def has_raw_points() -> sa.ColumnElement[bool]:
    """A condition on ``execution``: the run still has raw points."""
    return sa.exists().where(
        series.c.execution_id == col(Execution.id), point.c.series_id == series.c.id
    )


def count_raw_points(session: Session, run_ids: sa.Select[Any]) -> int:
    """How many raw points the runs selected by ``run_ids`` (a one-column select) have."""
    query = (
        sa.select(sa.func.count())
        .select_from(point)
        .where(point.c.series_id.in_(_series_of(run_ids, None)))
    )
    return session.scalar(query) or 0


def daily_union(
    dialect: str, *, run_ids: sa.Select[Any] | None, names: Sequence[str] | None
) -> sa.Select[Any]:
    """Daily aggregates from rollups and from the raw points not rolled up yet, as one select.

    Columns are :data:`AGGREGATE_COLUMNS`; restricted to the runs ``run_ids`` selects and the
    metric ``names`` when given. A day may appear twice (a rollup and raw points recorded into
    the run after it) — callers combine them (``analytics.metrics_daily_frame`` does).
    """
    rolled_where: list[sa.ColumnElement[bool]] = [sa.true()]
    if run_ids is not None:
        rolled_where.append(col(MetricRollup.execution_id).in_(run_ids))
    if names is not None:
        rolled_where.append(col(MetricRollup.name).in_(list(names)))
    raw = daily_aggregates(dialect, run_ids, names).subquery("raw_daily")
    rolled = sa.select(*(col(getattr(MetricRollup, c)) for c in AGGREGATE_COLUMNS)).where(
        *rolled_where
    )
    return sa.select(*(raw.c[c] for c in AGGREGATE_COLUMNS)).union_all(rolled)  # type: ignore[return-value]
