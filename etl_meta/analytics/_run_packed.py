"""One run's metric points on PostgreSQL: one row, the points packed in one ``bytea``.

``metrics_frame(run=…)`` (benchmark (a)) reads the points with their ``component_id`` and the
run's names (see :mod:`._run_points`). Read as a row per point, each point cost psycopg a tuple
and a Python object per value, and the frame a transposition and a conversion per column:
most of a 50-point call. So one statement answers with one row:

* the points, one 8-byte field per column, packed by the server into one ``bytea``
  (:mod:`._pg_packed`), with their count, and their names as a text array when the call does
  not name one metric;
* the run's orchestrator run id, orchestrator and job name, and its job's component ids and
  names as two arrays (a ``LATERAL`` aggregate), without JSON to decode.

numpy reads the records as one table; the four integer columns of the frame (id, run id,
attempt, step) are the first four fields, so they become the frame's one integer block
(``._run_points.RUN_LAYOUT``) as they are. There is no per-point Python work but a metric name
list when the call names no single metric. The aggregates have no ``ORDER BY`` (a sort per
aggregate cost the server more than the rest of the query): PostgreSQL feeds every input row to
all the aggregates of a query level in one pass, so the names line up with the records, and the
frame is sorted by id here. The tests compare the frame with the joined statement's.

A run of more than :data:`MOST_POINTS` points (an aggregate is one value, of at most 1 GB)
answers ``None``, and the caller reads the joined statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from etl_meta.analytics import _pg_packed
from etl_meta.analytics._compiled import Shaped, param
from etl_meta.analytics._connections import ReadConnection
from etl_meta.analytics._frames import (
    Kind,
    category_dtype,
    codes_dtype,
    column,
    from_codes,
    from_rows,
    repeated,
    utc_timestamps,
)
from etl_meta.analytics._run_points import RUN_LAYOUT
from etl_meta.analytics._select import component, execution, job, metric

#: The packed fields, in record order: the frame's integer columns first, in the frame's order.
_FIELDS: tuple[tuple[str, _pg_packed.Field], ...] = (
    ("id", "int"),
    ("execution_id", "int"),
    ("attempt", "int"),
    ("step", "int"),
    ("value", "float"),
    ("recorded_at", "timestamp"),
    ("component_id", "int"),
)
_VALUE, _RECORDED_AT, _COMPONENT = 4, 5, 6
#: The most points one call reads packed: 48 MB of records, well under an aggregate's 1 GB.
MOST_POINTS = 1_000_000


def _packed_statement(points: sa.Select) -> sa.Select:
    """One row: the points of ``points`` packed, then the run's and its components' names
    (no row when the run does not exist)."""
    most = param("most_points", sa.Integer)  # MOST_POINTS + 1: more is the joined statement's
    rows = points.add_columns(metric.c.execution_id).limit(most).subquery()
    aggregates = [
        _pg_packed.pack([(rows.c[key], kind) for key, kind in _FIELDS]),
        sa.func.count(),
    ]
    if "name" in rows.c:
        aggregates.append(sa.func.array_agg(rows.c.name))
    aggregated = sa.select(*aggregates).subquery()
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
    component is not one of the run's job's, or the run has more than :data:`MOST_POINTS`
    points: then the caller reads the joined statement."""
    if tuple(columns) != RUN_LAYOUT.columns:  # pragma: no cover (METRIC_COLUMNS must agree)
        raise AssertionError("run metric columns differ from METRIC_COLUMNS")
    key = ("metrics-run-packed", *points.key)
    shaped = Shaped(key, lambda: _packed_statement(points.build()), points.values, True)
    compiled = shaped.compiled(connection.dialect)
    params = compiled.bind({**shaped.values, "most_points": MOST_POINTS + 1})
    found = connection.prepared_rows(compiled.sql, params)
    if not found:  # no such run
        return from_rows([], columns)
    packed, count, *names, run, orchestrator, job_name, ids, labels = found[0]
    if count > MOST_POINTS:
        return None
    if not count:
        return from_rows([], columns)
    records = _pg_packed.unpack(packed, count, len(_FIELDS))
    order = records[:, 0].argsort(kind="stable")
    fields = _pg_packed.by_field(records, order)
    # A job without components has NULL arrays (and its run no points of its own).
    components = {} if ids is None else dict(zip(ids, labels, strict=True))
    present = set(fields[_COMPONENT].tolist())
    if not present <= components.keys():
        return None
    if names:  # text arrays load as lists (psycopg's loader)
        metric_names = column([names[0][index] for index in order.tolist()], "category")
    else:
        metric_names = repeated(points.values["name"], count, "category")
    blocks = [
        fields[:4],
        repeated(run, count, "category"),
        repeated(orchestrator, count, "category"),
        repeated(job_name, count, "category"),
        _component_names(fields[_COMPONENT], present, components),
        metric_names,
        _pg_packed.floats(fields[_VALUE]),
        utc_timestamps(_pg_packed.timestamps(fields[_RECORDED_AT])),
    ]
    return RUN_LAYOUT.frame(blocks, count)


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
