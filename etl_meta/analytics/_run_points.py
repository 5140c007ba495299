"""One run's metric points read as ids, with the names of the run's job beside them.

``metrics_frame(run=…)`` is the typical small read (benchmark (a): one metric's history in one
run, about fifty points). The joined statement repeats five names per point — run id,
orchestrator, job, component — that belong to one execution and its job's few components: on
SQLite the joins were a third of the query, on PostgreSQL the server sent, and psycopg decoded,
every string again. So the read asks for two things:

1. the points with their ``component_id`` (``._narrow``'s statement, the call's filters
   included), sorted by id here rather than by the database; not the run's id, which is the
   call's, nor, when the call names one metric, the name;
2. the run's execution with its job's components and their job's name: a few rows.

On PostgreSQL both are one statement, one snapshot and one round trip: the points packed in
one ``bytea`` and the names as arrays, in one row (:mod:`._run_packed`). On SQLite, in process,
they are two statements in one read transaction (:func:`read_run`). Each point's names are
picked by its ``component_id``. A point whose component is not among the run's job's (a row
written by hand: ``store.metrics.record`` resolves components within the run's job), or, on
SQLite, a run deleted between the two statements, makes the read answer ``None``, and the
caller reads the joined statement instead: the frame is always the joined statement's, which
the tests check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from etl_meta.analytics import _narrow
from etl_meta.analytics._compiled import Shaped, param
from etl_meta.analytics._connections import ReadConnection
from etl_meta.analytics._frames import (
    Kind,
    Layout,
    category_dtype,
    codes_dtype,
    column,
    from_codes,
    from_rows,
    repeated,
)
from etl_meta.analytics._select import MetricShape, component, execution, job, metric
from etl_meta.analytics._tables import rows_table
from etl_meta.transpose import columns_of

#: A run's metric frame (``METRIC_COLUMNS``) as blocks: metric_id, run_id, attempt and step in
#: one integer block, then a block per column. Both backends' run reads build it
#: (:mod:`._run_packed` too).
RUN_LAYOUT = Layout(
    (
        "metric_id",
        "run_id",
        "external_run_id",
        "orchestrator",
        "job",
        "component",
        "name",
        "attempt",
        "step",
        "value",
        "recorded_at",
    ),
    (
        ("int", (0, 1, 7, 8)),
        ("category", (2,)),
        ("category", (3,)),
        ("category", (4,)),
        ("category", (5,)),
        ("category", (6,)),
        ("float", (9,)),
        ("timestamp", (10,)),
    ),
)

#: The points statement's columns and their kinds; ``name`` only when the call does not name
#: exactly one metric.
_POINTS: Mapping[str, Kind] = {
    "id": "int",
    "component_id": "int",
    "attempt": "int",
    "step": "int",
    "value": "float",
    "recorded_at": "timestamp",
    "name": "text",
}
_ID, _COMPONENT, _ATTEMPT, _STEP, _VALUE, _RECORDED_AT, _NAME = range(len(_POINTS))


def run_points_shaped(dialect: str, shape: MetricShape, values: Mapping[str, Any]) -> Shaped:
    """The points statement of a ``metrics_frame(run=…)`` call (see the module's doc)."""
    name = one_name(values)
    return Shaped(
        ("metrics-run", dialect, shape),
        # Built once per shape (then cached): the columns are looked up only then.
        lambda: _narrow.points_statement(
            dialect, shape, [metric.c[key] for key in point_columns(name)]
        ),
        values,
        True,
    )


def one_name(values: Mapping[str, Any]) -> str | None:
    """The metric name a call gives alone (``name="rows"``; a list binds ``name_0``, …)."""
    return values.get("name")


def point_columns(name: str | None) -> dict[str, Kind]:
    """The points statement's columns: without ``name`` when the call gave one."""
    return {key: kind for key, kind in _POINTS.items() if name is None or key != "name"}


def _names_statement() -> sa.Select:
    """The run's execution with each of its job's components: one row per component."""
    return (
        sa.select(
            component.c.id,
            job.c.name,
            component.c.name,
            execution.c.external_run_id,
            execution.c.orchestrator,
            execution.c.id,
        )
        .select_from(execution)
        .join(component, component.c.job_id == execution.c.job_id)
        .join(job, job.c.id == component.c.job_id)
        .where(execution.c.id == param("run", execution.c.id.type))
    )


def read_run(
    connection: ReadConnection,
    points: Shaped,
    columns: Mapping[str, Kind],
    rows_in_python: int,
) -> pd.DataFrame | None:
    """SQLite: the frame of ``points`` (:func:`run_points_shaped`), or ``None`` when a point's
    names are not the run's job's: then read the joined statement.

    Up to ``rows_in_python`` points, the frame is built column by column in Python; a run with
    more goes through Arrow, as a whole frame does (``._narrow.assemble``).
    """
    dialect, driver = connection.dialect, connection.driver
    names = Shaped(("metrics-run-names",), _names_statement, {"run": points.values["run"]}, True)
    # sqlite3 is in autocommit mode here (see etl_meta.db): a deferred BEGIN makes both
    # statements read one snapshot, and COMMIT ends the read.
    driver.execute("BEGIN")
    try:
        rows, owners = [
            driver.execute(compiled.sql, compiled.bind(shaped.values)).fetchall()
            for shaped in (points, names)
            for compiled in (shaped.compiled(dialect),)
        ]
    finally:
        driver.execute("COMMIT")
    by_component = {owner[0]: owner for owner in owners}
    if not set(map(itemgetter(_COMPONENT), rows)) <= by_component.keys():
        return None
    run, name = points.values["run"], one_name(points.values)
    if len(rows) > rows_in_python:
        table = _points_table(rows, run, name, dialect.name)
        present = {point[_COMPONENT] for point in rows}  # categories: the components present
        named = [owner for owner in owners if owner[0] in present]
        return _narrow.assemble(table, *_names_tables(named), columns)
    return assemble(rows, by_component, run, name, columns)


def _points_table(rows: list[tuple[Any, ...]], run: int, name: str | None, dialect: str) -> Any:
    """The points as ``._narrow.assemble`` takes them (:data:`._narrow.POINTS`), in Arrow."""
    import pyarrow as pa

    kinds = point_columns(name)
    read = rows_table([row[: len(kinds)] for row in rows], kinds, dialect)
    count = read.num_rows
    given = {
        "execution_id": pa.repeat(pa.scalar(run, pa.int64()), count),
        "name": None if name is None else pa.repeat(pa.scalar(name, pa.large_string()), count),
    }
    return pa.table(
        {key: read.column(key) if given.get(key) is None else given[key] for key in _narrow.POINTS}
    )


def _names_tables(owners: list[tuple[Any, ...]]) -> tuple[Any, Any]:
    """The run's names as ``._narrow.assemble`` takes them: components, then executions."""
    import pyarrow as pa

    ids, jobs, components, runs, orchestrators, executions = (
        list(v) for v in zip(*owners, strict=True)
    )
    run = {"id": executions[:1], "run": runs[:1], "orchestrator": orchestrators[:1]}
    return pa.table({"id": ids, "job": jobs, "component": components}), pa.table(run)


def assemble(
    points: list[tuple[Any, ...]],
    by_component: Mapping[int, tuple[Any, ...]],
    run: int,
    name: str | None,
    columns: Mapping[str, Kind],
) -> pd.DataFrame:
    """The metric frame, sorted by metric id, column by column: from the points, the run's
    names by component id (rows of :func:`_names_statement`), the run's id and the one metric
    name the call gave (``None``: the points hold their names)."""
    if not points:
        return from_rows([], columns)
    points.sort(key=itemgetter(_ID))
    count = len(points)
    values = columns_of(points, len(points[0]))
    if tuple(columns) != RUN_LAYOUT.columns:  # pragma: no cover (METRIC_COLUMNS must agree)
        raise AssertionError("run metric columns differ from METRIC_COLUMNS")
    # One execution, and its job's components: the run id, orchestrator and job are one value.
    _, job_name, _, external_run_id, orchestrator, _ = by_component[points[0][_COMPONENT]]
    integers = np.array((values[_ID], values[_ID], values[_ATTEMPT], values[_STEP]), dtype=np.int64)
    integers[1] = run  # run_id: the call's
    blocks = [
        integers,
        repeated(external_run_id, count, "category"),
        repeated(orchestrator, count, "category"),
        repeated(job_name, count, "category"),
        _component_names(values[_COMPONENT], by_component),
        column(values[_NAME], "category") if name is None else repeated(name, count, "category"),
        column(values[_VALUE], "float"),
        column(values[_RECORDED_AT], "timestamp"),
    ]
    return RUN_LAYOUT.frame(blocks, count)


def _component_names(ids: Sequence[int], by_component: Mapping[int, tuple[Any, ...]]) -> Any:
    """Each point's component name, from its id, as a categorical of the components present
    (sorted, as ``column(…, "category")`` sorts them): codes by id, never a name per point.
    Component names are unique within a job, so names and ids of the run's job correspond."""
    present = sorted((by_component[key][2], key) for key in set(ids))
    if len(present) == 1:
        return repeated(present[0][0], len(ids), "category")
    code = {key: index for index, (_, key) in enumerate(present)}
    return from_codes(
        np.fromiter(map(code.__getitem__, ids), dtype=codes_dtype(len(code)), count=len(ids)),
        category_dtype(tuple(name for name, _ in present)),
    )
