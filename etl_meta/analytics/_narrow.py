"""Whole metric frames read as ids and joined with their names in Arrow.

A metric frame repeats five names per point (run id, orchestrator, job, component) that belong
to a few thousand runs and components. Joining them in the database and sending them with every
point cost two thirds of a million-point read on PostgreSQL: the joins themselves, and the server
formatting and sending the same strings a million times. So a large read takes three
statements in one snapshot, through ADBC (see :mod:`._adbc`; PostgreSQL ``REPEATABLE READ``,
SQLite one read transaction):

1. the points with their ``execution_id`` and ``component_id`` only, the job, component and tag
   filters turned into a condition on ``component_id`` — on PostgreSQL ``= ANY(ARRAY(SELECT
   …))``, which the planner answers with a bitmap heap scan of the ``metric(component_id, …)``
   index, in table order, which is usually id order already (``IN (SELECT …)`` made it probe
   the index component by component, in no useful order);
2. the components' and jobs' names, for the component ids present;
3. the runs' ids and orchestrators, for the execution ids present;

and the frame's names are taken from 2 and 3 by position (dictionary codes, never strings per
point). The frame is the one :func:`etl_meta.analytics.metrics_frame` documents, exactly: the
tests compare it with the joined statement's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from etl_meta.analytics._compiled import Shaped, param
from etl_meta.analytics._frames import Kind, categorical, frame, utc_timestamps
from etl_meta.analytics._select import (
    MetricShape,
    component,
    execution,
    job,
    metric,
    metric_conditions,
    metric_from,
)
from etl_meta.analytics._tables import conform, sorted_by
from etl_meta.errors import EtlMetaError

_IDS = postgresql.ARRAY(sa.BigInteger)

#: How :func:`points_statement` splits a call's filters: those that select components (a subquery
#: on ``component`` ⋈ ``job``) and those on the points themselves. A filter left out of both
#: would be silently dropped, so a new ``MetricShape`` field stops the import until it is placed.
_COMPONENT_FIELDS = ("job", "component", "tags")
_POINT_FIELDS = ("name", "run", "since", "until", "attempts")
_PLACED = {*_COMPONENT_FIELDS, *_POINT_FIELDS, "filter"}  # a filter expression keeps the joins
if {f.name for f in dataclasses.fields(MetricShape)} != _PLACED:
    raise ImportError(f"{__name__}: place every MetricShape field in points_statement")


def _dimension(which: str, dialect: str) -> sa.Select:
    """Names of the components (and their jobs) or runs whose ids are the ``ids`` parameter:
    an array on PostgreSQL, a JSON array on SQLite (``json_each``; no limit on how many)."""
    if which == "components":
        statement = sa.select(component.c.id, job.c.name, component.c.name).join(
            job, job.c.id == component.c.job_id
        )
        key = component.c.id
    else:
        statement = sa.select(execution.c.id, execution.c.external_run_id, execution.c.orchestrator)
        key = execution.c.id
    if dialect == "postgresql":
        return statement.where(key == sa.any_(param("ids", _IDS)))
    listed = sa.select(sa.column("value")).select_from(sa.func.json_each(param("ids", sa.String)))
    return statement.where(key.in_(listed))


def narrow_shaped(dialect: str, shape: MetricShape, values: Mapping[str, Any]) -> Shaped:
    """The ids-only statement of a whole-frame ``metrics_frame`` call."""
    return Shaped(
        ("metrics-narrow", dialect, shape),
        lambda: points_statement(dialect, shape, _COLUMNS),
        values,
        False,
    )


def dimension_shaped(dialect: str, which: str, ids: list[int]) -> Shaped:
    """The names of these components (``which="components"``) or runs (``"executions"``)."""
    value = ids if dialect == "postgresql" else json.dumps(ids)
    key = ("metrics-narrow", dialect, which)
    return Shaped(key, lambda: _dimension(which, dialect), {"ids": value}, False)


#: The points statement's columns for a whole frame, as :data:`POINTS` names them.
_COLUMNS = (
    metric.c.id,
    metric.c.execution_id,
    metric.c.component_id,
    metric.c.name,
    metric.c.attempt,
    metric.c.step,
    metric.c.value,
    metric.c.recorded_at,
)


def points_statement(dialect: str, shape: MetricShape, columns: Sequence[Any]) -> sa.Select:
    """``columns`` of ``metric`` for the points ``shape`` selects, with no join for names."""
    if shape.filter is not None:
        # A filter expression may name any field, under OR or NOT: it needs the joins. The
        # names still stay out of the result.
        return sa.select(*columns).select_from(metric_from()).where(*metric_conditions(shape))
    by_component = MetricShape(**{f: getattr(shape, f) for f in _COMPONENT_FIELDS}, attempts="all")
    on_points = MetricShape(**{f: getattr(shape, f) for f in _POINT_FIELDS})
    clauses = metric_conditions(on_points)
    component_clauses = metric_conditions(by_component)
    if component_clauses:
        ids = (
            sa.select(component.c.id)
            .join(job, job.c.id == component.c.job_id)
            .where(*component_clauses)
            .scalar_subquery()
        )
        if dialect == "postgresql":  # = ANY(ARRAY(…)): a bitmap scan of the index, see above
            clauses.append(metric.c.component_id == sa.any_(sa.func.array(ids, type_=_IDS)))
        else:
            clauses.append(metric.c.component_id.in_(ids))
    return sa.select(*columns).where(*clauses)


#: The points statement's columns (see :func:`points_statement`), as read.
POINTS: Mapping[str, Kind] = {
    "id": "int",
    "execution_id": "int",
    "component_id": "int",
    "name": "text",
    "attempt": "int",
    "step": "int",
    "value": "float",
    "recorded_at": "timestamp",
}


def assemble(points: Any, components: Any, executions: Any, columns: Mapping[str, Kind]) -> Any:
    """The metric frame from the three tables (Arrow, as read), sorted by metric id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    points = sorted_by(conform(points, POINTS), "id")
    components = conform(components, {"id": "int", "job": "text", "component": "text"})
    executions = conform(executions, {"id": "int", "run": "text", "orchestrator": "text"})
    at_component = _positions(points.column(2), components.column(0), "component")
    at_execution = _positions(points.column(1), executions.column(0), "run")
    data: dict[str, Any] = {
        "metric_id": points.column(0).to_numpy(),
        "run_id": points.column(1).to_numpy(),
        "external_run_id": _category(executions.column(1), at_execution),
        "orchestrator": _category(executions.column(2), at_execution),
        "job": _category(components.column(1), at_component),
        "component": _category(components.column(2), at_component),
        "name": _category(points.column(3), None),
        "attempt": points.column(4).to_numpy(),
        "step": points.column(5).to_numpy(),
        "value": points.column(6).to_numpy(),
        "recorded_at": utc_timestamps(
            pc.cast(points.column(7).combine_chunks(), pa.int64()).to_numpy().view("datetime64[us]")
        ),
    }
    if list(data) != list(columns):  # pragma: no cover (METRIC_COLUMNS and this must agree)
        raise AssertionError("narrow metric columns differ from METRIC_COLUMNS")
    return frame(data, points.num_rows)


def _positions(ids: Any, dimension_ids: Any, what: str) -> Any:
    """Each point's row in a dimension table; every id is there (foreign keys, one snapshot)."""
    import pyarrow.compute as pc

    positions = pc.index_in(ids, value_set=dimension_ids).combine_chunks()
    if positions.null_count:  # pragma: no cover (a foreign key guarantees it)
        raise EtlMetaError(f"a metric point refers to a {what} the same snapshot does not hold")
    return positions


def _category(values: Any, positions: Any) -> Any:
    """Dictionary-encode ``values`` (a dimension's column, or the points' own), then pick each
    point's code: the categorical is built from codes, never from a string per point."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values).combine_chunks()
    indices = encoded.indices.fill_null(-1)
    if positions is not None:
        indices = pc.take(indices, positions)
    codes = indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return categorical(codes, encoded.dictionary.to_pylist())
