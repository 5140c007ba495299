"""The latest values of a job's recent runs on SQLite: values with ids, names beside them.

``latest_metrics`` (benchmark (c)) reads a few rows per run for up to hundreds of runs. In the
joined statement every row repeats its run's orchestrator run id, start time and status and its
component's name: four strings per row that SQLite decoded and Python converted again, row
after row (8,000 rows: 12.4 ms to fetch, 8.5 ms without them). So the read asks for three
things, in one read transaction (one snapshot):

1. the job's recent runs: id, orchestrator run id, start and status (a row per run);
2. their latest values, with run and component ids, in the joined statement's order (run id
   descending, then component name, then metric name);
3. the job's components: id and name.

Each row's run and component columns are picked by its ids, as categoricals of the values
present (``column(…, "category")`` gives the same). A row whose component is not the job's (a
row written by hand; ``store.metrics.record`` resolves components within the run's job) makes
the read answer ``None``, and the caller reads the joined statement: the frame is always the
joined statement's, which the tests check.

PostgreSQL reads the joined statement: its read connections run each statement on its own
(autocommit), so three statements would be three snapshots, and its binary rows cost less to
decode (benchmark (c) there is 0.9× the hand-written query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from etl_meta.analytics._compiled import Shaped, param
from etl_meta.analytics._connections import ReadConnection
from etl_meta.analytics._frames import (
    Kind,
    category_dtype,
    codes_dtype,
    column,
    frame,
    from_codes,
    from_rows,
)
from etl_meta.analytics._select import component, execution, job, metric_latest
from etl_meta.transpose import columns_of


def recent_runs(*columns: sa.ColumnElement[Any]) -> sa.Select:
    """``columns`` of the job's (``job`` parameter) ``runs`` most recent runs, newest first."""
    return (
        sa.select(*columns)
        .select_from(execution.join(job, job.c.id == execution.c.job_id))
        .where(job.c.name == param("job", job.c.name.type))
        .order_by(execution.c.id.desc())
        .limit(param("runs", sa.Integer()))
    )


def _runs_statement() -> sa.Select:
    return recent_runs(
        execution.c.id, execution.c.external_run_id, execution.c.started_at, execution.c.status
    )


def latest_values(recent: sa.Subquery, *columns: sa.ColumnElement[Any]) -> sa.Select:
    """``columns`` of the latest values of the runs in ``recent`` (:func:`recent_runs`, with
    ``id``), newest run first, then by component name and metric name."""
    return (
        sa.select(*columns)
        .select_from(
            recent.join(metric_latest, metric_latest.c.execution_id == recent.c.id).join(
                component, component.c.id == metric_latest.c.component_id
            )
        )
        .order_by(recent.c.id.desc(), component.c.name, metric_latest.c.name)
    )


def _values_statement() -> sa.Select:
    recent = recent_runs(execution.c.id).subquery("recent")
    return latest_values(
        recent,
        metric_latest.c.execution_id,
        metric_latest.c.component_id,
        metric_latest.c.name,
        metric_latest.c.attempt,
        metric_latest.c.step,
        metric_latest.c.value,
        metric_latest.c.recorded_at,
    )


def _components_statement() -> sa.Select:
    return (
        sa.select(component.c.id, component.c.name)
        .join(job, job.c.id == component.c.job_id)
        .where(job.c.name == param("job", job.c.name.type))
    )


_STATEMENTS = (
    ("latest-runs", _runs_statement),
    ("latest-values", _values_statement),
    ("latest-components", _components_statement),
)
_RUN, _COMPONENT, _NAME, _ATTEMPT, _STEP, _VALUE, _RECORDED_AT = range(7)


def read_latest(
    connection: ReadConnection, values: Mapping[str, Any], columns: Mapping[str, Kind]
) -> pd.DataFrame | None:
    """SQLite: the ``latest_metrics`` frame (``values``: ``job`` and ``runs``), or ``None``
    when a value's component is not the job's: then read the joined statement."""
    dialect, driver = connection.dialect, connection.driver
    # sqlite3 is in autocommit mode here (see etl_meta.db): a deferred BEGIN makes the
    # statements read one snapshot, and COMMIT ends the read.
    driver.execute("BEGIN")
    try:
        runs, rows, components = [
            driver.execute(compiled.sql, compiled.bind(values)).fetchall()
            for key, build in _STATEMENTS
            for compiled in (Shaped((key,), build, values, True).compiled(dialect),)
        ]
    finally:
        driver.execute("COMMIT")
    if not rows:
        return from_rows([], columns)
    points = columns_of(rows, len(rows[0]))
    run_ids = np.array(points[_RUN], dtype=np.int64)
    component_ids = np.array(points[_COMPONENT], dtype=np.int64)
    at_run = _positions(run_ids, [run[0] for run in runs])
    at_component = _positions(component_ids, [each[0] for each in components])
    if at_run is None or at_component is None:
        return None
    started_at = column([run[2] for run in runs], "timestamp")
    data = {
        "run_id": run_ids,
        "external_run_id": _labelled(at_run, [run[1] for run in runs]),
        "started_at": started_at.take(at_run),
        "status": _labelled(at_run, [run[3] for run in runs]),
        "component": _labelled(at_component, [each[1] for each in components]),
        "name": column(points[_NAME], "category"),
        "attempt": np.array(points[_ATTEMPT], dtype=np.int64),
        "step": np.array(points[_STEP], dtype=np.int64),
        "value": np.array(points[_VALUE], dtype=np.float64),
        "recorded_at": column(points[_RECORDED_AT], "timestamp"),
    }
    if list(data) != list(columns):  # pragma: no cover (LATEST_COLUMNS and this must agree)
        raise AssertionError("latest metric columns differ from LATEST_COLUMNS")
    return frame(data, len(rows))


def _positions(ids: np.ndarray, among: Sequence[int]) -> np.ndarray | None:
    """Each of ``ids``' place in ``among`` (distinct ids), or ``None`` if one is not there."""
    if not among:
        return None
    keys = np.array(among, dtype=np.int64)
    order = keys.argsort(kind="stable")
    found = np.minimum(np.searchsorted(keys, ids, sorter=order), len(keys) - 1)
    places = order[found]
    return places if bool(np.all(keys[places] == ids)) else None


def _labelled(places: np.ndarray, labels: Sequence[str | None]) -> pd.Categorical:
    """The categorical of ``labels[place]`` for each of ``places``, with the labels present as
    its categories, sorted as ``column(…, "category")`` sorts them: codes by place, never a
    label per row. Labels may repeat (a status)."""
    present = np.unique(places).tolist()
    names = [labels[place] for place in present]
    categories = sorted({name for name in names if name is not None})
    code = {name: index for index, name in enumerate(categories)}
    lookup = np.full(len(labels), -1, dtype=codes_dtype(len(categories)))
    lookup[present] = [code.get(name, -1) for name in names]  # type: ignore[arg-type]
    return from_codes(lookup[places], category_dtype(tuple(categories)))
