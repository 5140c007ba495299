"""One run's metric points on PostgreSQL: one row of arrays, read straight into numpy.

``metrics_frame(run=…)`` (benchmark (a)) reads the points with their ``component_id`` and the
run's names (see :mod:`._run_points`). Read as a row per point, each point cost psycopg a tuple
and a Python object per value, and the frame a transposition and a conversion per column:
most of a 50-point call. So one statement answers with one row:

* the points' integer columns (id, component id, attempt, step) as one two-dimensional
  ``bigint`` array, one row per point, and their values, times (and names, when the call does
  not name one metric) as arrays: ``array_agg``, decoded by numpy (:mod:`._pg_arrays`), one
  array per column cost more than packing the four integers per point on the server;
* the run's orchestrator run id, orchestrator and job name, and its job's component ids and
  names as two arrays (a ``LATERAL`` aggregate), without JSON to decode.

The frame is built from whole arrays at any size: no per-point Python work but a metric name
list when the call names no single metric. The aggregates have no ``ORDER BY`` (a sort per
aggregate cost the server more than the rest of the query): PostgreSQL feeds every input row to
all the aggregates of a query level in one pass, so the arrays are aligned element by element,
and the frame is sorted by id here. The tests compare the frame with the joined statement's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

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
    repeated,
    utc_timestamps,
)
from etl_meta.analytics._pg_arrays import arrays_cursor
from etl_meta.analytics._run_points import one_name
from etl_meta.analytics._select import component, execution, job

#: The packed integer columns, in their order in each point's row of the 2-D array.
_INTEGERS = ("id", "component_id", "attempt", "step")


def _arrays_statement(points: sa.Select) -> sa.Select:
    """One row: the points of ``points`` as arrays, then the run's and its components' names
    (no row when the run does not exist)."""
    rows = points.subquery()
    packed = postgresql.array([rows.c[key] for key in _INTEGERS], type_=sa.BigInteger)
    others = [each for each in rows.c if each.key not in _INTEGERS]
    aggregated = sa.select(
        sa.func.array_agg(packed), *(sa.func.array_agg(each) for each in others)
    ).subquery()
    owned = (
        sa.select(
            sa.func.array_agg(component.c.id).label("ids"),
            sa.func.array_agg(component.c.name).label("names"),
        )
        .where(component.c.job_id == execution.c.job_id)
        .lateral()
    )
    return (
        sa.select(
            *aggregated.c,
            execution.c.external_run_id,
            execution.c.orchestrator,
            job.c.name,
            owned.c.ids,
            owned.c.names,
        )
        .select_from(aggregated)
        .join(execution, sa.true())
        .join(job, job.c.id == execution.c.job_id)
        .join(owned, sa.true())
        .where(execution.c.id == param("run", execution.c.id.type))
    )


def read_run(
    connection: ReadConnection, points: Shaped, columns: Mapping[str, Kind]
) -> pd.DataFrame | None:
    """The frame of ``points`` (``._run_points.run_points_shaped``), or ``None`` when a point's
    component is not one of the run's job's: then the caller reads the joined statement."""
    key = ("metrics-run-arrays", *points.key)
    shaped = Shaped(key, lambda: _arrays_statement(points.build()), points.values, True)
    compiled = shaped.compiled(connection.dialect)
    params = compiled.bind(shaped.values)
    found = connection.prepared_rows(compiled.sql, params, arrays_cursor)
    if not found or found[0][0] is None:  # no such run; or array_agg of no points: NULL
        return from_rows([], columns)
    named = one_name(points.values) is not None
    integers, values, recorded_at, *names, run, orchestrator, job_name, ids, labels = found[0]
    # A job without components has NULL arrays (and its run no points of its own).
    components = {} if ids is None else dict(zip(ids.tolist(), labels, strict=True))
    present = set(integers[:, 1].tolist())
    if not present <= components.keys():
        return None
    order = np.argsort(integers[:, 0], kind="stable")
    count = len(order)
    integers = np.take(integers.T, order, axis=1)  # a contiguous row per integer column
    if named:
        metric_names = repeated(points.values["name"], count, "category")
    else:  # text arrays load as lists (psycopg's loader)
        metric_names = column([names[0][index] for index in order.tolist()], "category")
    data = {
        "metric_id": integers[0],
        "run_id": np.full(count, points.values["run"], dtype=np.int64),
        "external_run_id": repeated(run, count, "text"),
        "orchestrator": repeated(orchestrator, count, "category"),
        "job": repeated(job_name, count, "category"),
        "component": _component_names(integers[1], present, components),
        "name": metric_names,
        "attempt": integers[2],
        "step": integers[3],
        "value": values[order],
        "recorded_at": utc_timestamps(recorded_at[order]),
    }
    if list(data) != list(columns):  # pragma: no cover (METRIC_COLUMNS and this must agree)
        raise AssertionError("run metric columns differ from METRIC_COLUMNS")
    return frame(data, count)


def _component_names(ids: np.ndarray, present: set[int], names: Mapping[int, str]) -> Any:
    """Each point's component name as a categorical of the components present, sorted by name
    as ``column(…, "category")`` sorts them: codes from ids, never a name per point. Component
    names are unique within a job, so the run's job's names and ids correspond."""
    if len(present) == 1:
        return repeated(names[next(iter(present))], len(ids), "category")
    by_name = sorted(present, key=names.__getitem__)
    keys = np.array(sorted(present), dtype=ids.dtype)
    codes = codes_dtype(len(keys))
    rank = np.empty(len(keys), dtype=codes)  # a component's place among the names
    rank[np.searchsorted(keys, by_name)] = np.arange(len(keys), dtype=codes)
    return from_codes(
        rank[np.searchsorted(keys, ids)], category_dtype(tuple(names[key] for key in by_name))
    )
