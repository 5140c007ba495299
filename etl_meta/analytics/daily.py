"""Daily metric aggregates that answer the same before and after retention rolls points up.

After a job's ``raw_days`` the retention pass replaces a run's raw points by one rollup per
(run, component, attempt, metric, UTC day); :func:`metrics_daily_frame` reads those rollups and
aggregates the raw points still there the same way, so its answer does not change when a rollup
happens. Finer resolution (per point, per step, per hour) exists only for runs younger than
``raw_days``: see ``docs/retention.md#resolution``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col

from etl_meta.models import Component, Execution, Job
from etl_meta.repository import rollups
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

#: The frame's columns, in order.
DAILY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "job",
    "component",
    "attempt",
    "name",
    "day",
    "count",
    "min",
    "max",
    "sum",
    "mean",
    "first",
    "last",
)
_KEYS = ["run_id", "component", "attempt", "name", "day"]


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def metrics_daily_frame(
    store: MetadataStore,
    *,
    job: str | Iterable[str] | None = None,
    name: str | Iterable[str] | None = None,
    run_id: int | Iterable[int] | None = None,
) -> pd.DataFrame:
    """One row per (run, component, attempt, metric, UTC day): count, min, max, sum, mean and
    the values at the day's first and last step — from rollups and raw points alike.

    ``day`` is the UTC midnight the day starts at (tz-aware). Rows are sorted by run, component,
    attempt, name and day. Example::

        metrics_daily_frame(store, job="daily_sales", name="rows")
    """
    import pandas as pd

    jobs, names = _as_list(job), _as_list(name)
    run_ids: sa.Select[Any] | None = None
    if jobs is not None or run_id is not None:
        run_ids = sa.select(col(Execution.id))
        if jobs is not None:
            run_ids = run_ids.join(Job, col(Job.id) == Execution.job_id).where(
                col(Job.name).in_(jobs)
            )
        if run_id is not None:
            ids = [run_id] if isinstance(run_id, int) else list(run_id)
            run_ids = run_ids.where(col(Execution.id).in_(ids))
    union = rollups.daily_union(store.dialect, run_ids=run_ids, names=names).subquery("daily")
    query = (
        sa.select(
            union.c.execution_id,
            col(Job.name),
            col(Component.name),
            *(union.c[c] for c in rollups.AGGREGATE_COLUMNS[2:]),
        )
        .join(Component, col(Component.id) == union.c.component_id)
        .join(Job, col(Job.id) == Component.job_id)
    )
    with store.transaction(readonly=True) as session:
        rows = session.execute(query).all()
    raw = pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["run_id", "job", "component", *rollups.AGGREGATE_COLUMNS[2:]],
    )
    return _combine(raw)


def _combine(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per key: a rollup and later raw points of the same day become one."""
    import pandas as pd

    if raw.empty:
        return pd.DataFrame({column: [] for column in DAILY_COLUMNS})
    raw["day"] = pd.to_datetime(raw["day"].astype(str), utc=True)
    keys = [*_KEYS[:1], "job", *_KEYS[1:]]
    grouped = raw.groupby(keys, sort=True)
    frame = grouped.agg(
        count=("point_count", "sum"),
        min=("min_value", "min"),
        max=("max_value", "max"),
        sum=("sum_value", "sum"),
    )
    firsts = raw.sort_values("first_step").groupby(keys, sort=True)["first_value"].first()
    lasts = raw.sort_values("last_step").groupby(keys, sort=True)["last_value"].last()
    frame["mean"] = frame["sum"] / frame["count"]
    frame["first"], frame["last"] = firsts, lasts
    frame = frame.reset_index()
    frame["count"] = frame["count"].astype("int64")
    return frame[list(DAILY_COLUMNS)]
