"""Raw metric points ↔ daily rollups: the only module that reads or deletes raw points for
retention and for daily reads.

Three things touch the ``metric`` table here and nowhere else in the retention feature:

* :func:`daily_aggregates` — per (run, component, attempt, name, UTC day): count, min, max, sum
  and the values at the first and last step, computed from raw points with one GROUP BY;
* :func:`roll_up_runs` — that aggregate written into ``metric_rollup`` with one INSERT…SELECT;
* :func:`delete_raw_points` — the raw points of given runs, deleted (the seam where partitioned
  storage will detach or drop partitions instead);

plus :func:`has_raw_points` and :func:`count_raw_points`, which only look. Swapping the raw point
storage means rewriting this module; everything else reads ``metric_rollup`` or runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from etl_meta.models import Execution, Metric, MetricRollup
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


def daily_aggregates(dialect: str, where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """One row per (run, component, attempt, name, UTC day) of the raw points matching ``where``.

    Columns are :data:`AGGREGATE_COLUMNS`. First and last values are those at the lowest and
    highest step of the day (a step is unique within a metric of an attempt).
    """
    day = _utc_day(dialect, col(Metric.recorded_at))
    keys = (
        col(Metric.execution_id),
        col(Metric.component_id),
        col(Metric.attempt),
        col(Metric.name),
    )
    groups = (
        sa.select(
            *keys,
            day.label("day"),
            sa.func.count().label("point_count"),
            sa.func.min(col(Metric.value)).label("min_value"),
            sa.func.max(col(Metric.value)).label("max_value"),
            sa.func.sum(col(Metric.value)).label("sum_value"),
            sa.func.min(col(Metric.step)).label("first_step"),
            sa.func.max(col(Metric.step)).label("last_step"),
        )
        .where(where)
        .group_by(*keys, day)
        .subquery("daily")
    )
    first, last = aliased(Metric, name="first_point"), aliased(Metric, name="last_point")

    def same_metric(point: Any, step: Any) -> sa.ColumnElement[bool]:
        return sa.and_(
            point.execution_id == groups.c.execution_id,
            point.component_id == groups.c.component_id,
            point.attempt == groups.c.attempt,
            point.name == groups.c.name,
            point.step == step,
        )

    return (
        sa.select(
            *(groups.c[name] for name in AGGREGATE_COLUMNS[:9]),
            groups.c.first_step,
            col(first.value).label("first_value"),
            groups.c.last_step,
            col(last.value).label("last_value"),
        )
        .select_from(groups)
        .join(first, same_metric(first, groups.c.first_step))
        .join(last, same_metric(last, groups.c.last_step))
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
    source = daily_aggregates(dialect_name(session), col(Metric.execution_id).in_(ids))
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
    result = session.execute(
        sa.delete(Metric).where(col(Metric.execution_id).in_(ids)),
        execution_options={"synchronize_session": False},
    )
    return max(result.rowcount, 0)  # type: ignore[attr-defined]


def has_raw_points() -> sa.ColumnElement[bool]:
    """A condition on ``execution``: the run still has raw points."""
    return sa.exists().where(col(Metric.execution_id) == Execution.id)


def count_raw_points(session: Session, run_ids: sa.Select[Any]) -> int:
    """How many raw points the runs selected by ``run_ids`` (a one-column select) have."""
    query = (
        sa.select(sa.func.count()).select_from(Metric).where(col(Metric.execution_id).in_(run_ids))
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
    raw_where: list[sa.ColumnElement[bool]] = [sa.true()]
    rolled_where: list[sa.ColumnElement[bool]] = [sa.true()]
    if run_ids is not None:
        raw_where.append(col(Metric.execution_id).in_(run_ids))
        rolled_where.append(col(MetricRollup.execution_id).in_(run_ids))
    if names is not None:
        raw_where.append(col(Metric.name).in_(list(names)))
        rolled_where.append(col(MetricRollup.name).in_(list(names)))
    raw = daily_aggregates(dialect, sa.and_(*raw_where)).subquery("raw_daily")
    rolled = sa.select(*(col(getattr(MetricRollup, c)) for c in AGGREGATE_COLUMNS)).where(
        *rolled_where
    )
    return sa.select(*(raw.c[c] for c in AGGREGATE_COLUMNS)).union_all(rolled)  # type: ignore[return-value]
