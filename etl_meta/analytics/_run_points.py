"""One run's metric points read as ids, with the names of the run's job beside them.

``metrics_frame(run=…)`` is the typical small read (benchmark (a): one metric's history in one
run, about fifty points). The joined statement repeats five names per point — run id,
orchestrator, job, component — that belong to one execution and its job's few components: on
SQLite the joins were a third of the query, on PostgreSQL the server sent, and psycopg decoded,
every string again. So the read asks for two things:

1. the points with their ``execution_id`` and ``component_id`` only (``._narrow``'s statement,
   the call's filters included), sorted by id here rather than by the database;
2. the run's execution with its job's components and their job's name: a few rows.

On PostgreSQL both are one statement, one snapshot and one round trip: the points, then
``UNION ALL`` one row holding the names as a JSON array (about 15 % faster than the same two
statements sent in one psycopg pipeline, whose Python side cost more than the second statement).
On SQLite, in process, they are two statements in one read transaction. Each point's names are
picked by its ``component_id``. A point whose component is not among the run's job's (a row
written by hand: ``store.metrics.record`` resolves components within the run's job), or, on
SQLite, a run deleted between the two statements, makes :func:`read_run` answer ``None``, and
the caller reads the joined statement instead: the frame is always the joined statement's, which
the tests check.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from etl_meta.analytics import _narrow
from etl_meta.analytics._compiled import Shaped, param
from etl_meta.analytics._connections import ReadConnection, binary_cursor
from etl_meta.analytics._frames import Kind, column, frame, from_rows, repeated
from etl_meta.analytics._select import component, execution, job
from etl_meta.analytics._tables import rows_table

if TYPE_CHECKING:
    import pandas as pd

#: Columns :func:`assemble` builds whole: one value for every point of a run.
_REPEATED = frozenset(("external_run_id", "orchestrator", "job"))

#: The points statement's columns, in order (``._narrow``'s statement).
_ID, _RUN, _COMPONENT, _NAME, _ATTEMPT, _STEP, _VALUE, _RECORDED_AT = range(8)


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


def _with_names_statement(points: sa.Select) -> sa.Select:
    """PostgreSQL: the points, then one row whose last column holds the run's names as a JSON
    array of :func:`_names_statement` rows (points have ``NULL`` there, the names row a ``NULL``
    id). One statement is one snapshot and one round trip, without the pipeline's overhead."""
    owners = _names_statement().subquery()
    names = sa.select(
        sa.func.coalesce(
            sa.func.json_agg(sa.func.json_build_array(*owners.c)), sa.literal_column("'[]'::json")
        )
    ).scalar_subquery()
    nulls = [sa.null()] * len(points.selected_columns)
    return sa.union_all(points.add_columns(sa.null()), sa.select(*nulls, names))


def read_run(
    connection: ReadConnection,
    points: Shaped,
    columns: Mapping[str, Kind],
    rows_in_python: int,
) -> pd.DataFrame | None:
    """The frame of ``points`` (``._narrow``'s statement for a call with ``run=``), or ``None``
    when a point's names are not the run's job's: then read the joined statement.

    Up to ``rows_in_python`` points, the frame is built column by column in Python; a run with
    more goes through Arrow, as a whole frame does (``._narrow.assemble``).
    """
    dialect, driver = connection.dialect, connection.driver
    if dialect.name == "postgresql":
        key = ("metrics-run-with-names", *points.key)
        both = Shaped(key, lambda: _with_names_statement(points.build()), points.values, True)
        compiled = both.compiled(dialect)
        with binary_cursor(driver) as cursor:
            rows = cursor.execute(compiled.sql, compiled.bind(both.values), prepare=True).fetchall()
        # The names row is the one without an id; its JSON arrays become tuples.
        at = len(rows) - 1  # last, as PostgreSQL appends; looked for if not
        if rows[at][_ID] is not None:
            at = next(index for index, row in enumerate(rows) if row[_ID] is None)
        owners = [tuple(owner) for owner in rows.pop(at)[-1]]
    else:
        names = Shaped(
            ("metrics-run-names",), _names_statement, {"run": points.values["run"]}, True
        )
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
    if not all(point[_COMPONENT] in by_component for point in rows):
        return None
    if len(rows) > rows_in_python:
        table = rows_table(
            [row[: len(_narrow.POINTS)] for row in rows], _narrow.POINTS, dialect.name
        )
        return _narrow.assemble(table, *_names_tables(owners), columns)
    return assemble(rows, by_component, columns)


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
    columns: Mapping[str, Kind],
) -> pd.DataFrame:
    """The metric frame, sorted by metric id, from the points and the run's names by
    component id (rows of :func:`_names_statement`), column by column."""
    if not points:
        return from_rows([], columns)
    points.sort(key=itemgetter(_ID))
    count = len(points)
    values = list(zip(*points, strict=True))
    # One execution, and its job's components: the run id, orchestrator and job are one value.
    _, job_name, _, run, orchestrator, _ = by_component[points[0][_COMPONENT]]
    names = {key: owner[2] for key, owner in by_component.items()}
    picked = {
        "metric_id": values[_ID],
        "run_id": values[_RUN],
        "external_run_id": repeated(run, count, "text"),
        "orchestrator": repeated(orchestrator, count, "category"),
        "job": repeated(job_name, count, "category"),
        "component": [names[key] for key in values[_COMPONENT]],
        "name": values[_NAME],
        "attempt": values[_ATTEMPT],
        "step": values[_STEP],
        "value": values[_VALUE],
        "recorded_at": values[_RECORDED_AT],
    }
    if list(picked) != list(columns):  # pragma: no cover (METRIC_COLUMNS and this must agree)
        raise AssertionError("run metric columns differ from METRIC_COLUMNS")
    data = {
        name: picked[name] if name in _REPEATED else column(picked[name], kind)
        for name, kind in columns.items()
    }
    return frame(data, count)
