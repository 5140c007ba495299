"""Benchmark: the analyst query API against the same queries written by hand, per backend.

On a generated store (default ~5,000,000 metric points, ~5,000 runs of 50 jobs with 4 components
each, 20 metric names, 60 days of ``recorded_at``, ~5 % of steps retried) this measures, for
SQLite and, when a server URL is given, PostgreSQL (a scratch database created for the run and
dropped at the end):

``(a)``
    One metric's history for one run: ``metrics_frame(store, run=id, name=..., attempts="all")``.
``(b)``
    Daily mean/min/max/p95 of one metric of one job over 30 days: ``aggregate_metrics(...)``.
``(c)``
    The latest value of every metric for the 100 most recent runs of a job: ``latest_metrics``.
``(d)``
    A ~1,000,000-row ``metrics_frame`` of several jobs, in rows/s.

each next to the same query written by hand in SQL and run through the bare driver (``sqlite3`` /
psycopg 3) in the same run, plus reference variants (``(b)``: fetch + numpy on SQLite; ``(c)``:
the best query over the raw points; ``(d)``: ``pandas.read_sql`` and ``fetchall``). Medians of
``--repeats`` runs after one warm-up that also checks the store and the hand-written query give
the same rows. Targets (issue 19): (a)–(c) store ≤ 2 × the hand-written query's tuples and
≤ 1.0 × the same typed frame built by hand with pandas; (d) ≥ 1,000,000 rows/s on PostgreSQL.
The exit code is 0 whatever the figures: this is a measurement, not a test.

    .venv/bin/python benchmarks/analytics_queries.py --postgres-url postgresql://postgres@127.0.0.1/test

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import hashlib
import io
import itertools
import json
import math
import os
import platform
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, schema
from etl_meta.analytics import aggregate_metrics, latest_metrics, metrics_frame
from etl_meta.config import Settings, normalize_database_url
from etl_meta.db import create_engine

POSTGRES_ENV = "ETL_META_BENCH_POSTGRES_URL"
#: Bump when the generated data changes, so cached SQLite files are not reused.
GENERATOR_VERSION = 3  # 3: series + points (migration 0011)
SEED = 20261126

# --- the generated store ----------------------------------------------------------------------

JOBS = 50
COMPONENTS = ("extract", "validate", "transform", "load")
METRIC_NAMES = (
    "rows_read",
    "rows_written",
    "rows_rejected",
    "bytes_read",
    "bytes_written",
    "null_count",
    "duplicate_count",
    "batch_count",
    "duration_seconds",
    "cpu_seconds",
    "memory_mb",
    "throughput_rows_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "null_ratio",
    "freshness_lag_seconds",
    "quality.completeness",
    "quality.validity",
)
_INTEGER_SUFFIXES = ("_read", "_written", "_rejected", "_count")
POINTS_PER_RUN = 1_000
RETRY_RATE = 0.05  # share of (run, component) steps that have a second attempt
STEP_SECONDS = 60
T_END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=60)
SINCE = T_END - timedelta(days=30)

# --- the queries ------------------------------------------------------------------------------

QUERY_A_NAME = "rows_written"
QUERY_B_NAME = "latency_p95_ms"
QUERY_B_AGGREGATES = ("mean", "min", "max", "p95")
QUERY_C_RUNS = 100
TARGET_RATIO = 2.0  # store ÷ hand-written tuples
TARGET_RATIO_TYPED = 1.0  # store ÷ the same typed frame built by hand
TARGET_FRAME_ROWS_PER_S = 1_000_000
FRAME_LABEL = "hand SQL + DataFrame(rows)"
TYPED_LABEL = "hand SQL + typed DataFrame"
MIN_RUN_SECONDS = 0.2  # a timed run repeats a fast call until it takes about this long
MAX_INNER = 1_000
CALIBRATION_SECONDS = 0.05  # warm calls timed to size a run (see calls_per_run)

#: How SQLAlchemy stores ``UTCDateTime`` on SQLite: UTC text, microseconds always present.
SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

SQLITE_INSERT_EXECUTION = (
    "INSERT INTO execution (job_id, orchestrator, external_run_id, status, started_at, ended_at, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
PG_INSERT_EXECUTION = (
    "INSERT INTO execution (job_id, orchestrator, external_run_id, status, started_at, ended_at, "
    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
SELECT_EXECUTION_IDS = "SELECT external_run_id, id FROM execution"
SELECT_JOB_COMPONENTS = (
    "SELECT j.name, c.name, c.id FROM component AS c JOIN job AS j ON j.id = c.job_id"
)
# The points go into the store's three tables (docs/internals/metric-storage.md): the names,
# one series per (run, component, name, attempt) numbered in recording order (the order the
# store's writers give them), and the points keyed by (series_id, step). ``id`` is the point's
# recording order too: from the generator on SQLite (as the store's writer assigns it), from
# metric_point_id_seq on PostgreSQL.
SQLITE_INSERT_NAME = "INSERT INTO metric_name (id, name) VALUES (?, ?)"
SQLITE_INSERT_SERIES = (
    "INSERT INTO metric_series (id, execution_id, component_id, name_id, attempt) "
    "VALUES (?, ?, ?, ?, ?)"
)
SQLITE_INSERT_POINT = (
    "INSERT INTO metric_point (series_id, step, value, recorded_at, id) VALUES (?, ?, ?, ?, ?)"
)
PG_COPY_NAMES = "COPY metric_name (id, name) FROM STDIN (FORMAT BINARY)"
PG_COPY_NAME_TYPES = ["int4", "varchar"]
PG_COPY_SERIES = (
    "COPY metric_series (id, execution_id, component_id, name_id, attempt) "
    "FROM STDIN (FORMAT BINARY)"
)
PG_COPY_SERIES_TYPES = ["int8", "int4", "int4", "int4", "int4"]
PG_COPY_POINTS = (
    "COPY metric_point (series_id, step, value, recorded_at) FROM STDIN (FORMAT BINARY)"
)
PG_COPY_POINT_TYPES = ["int8", "int8", "float8", "timestamptz"]
#: After explicit ids: the sequences continue above them, as after the store's own writes.
PG_SET_SEQUENCES = (
    "SELECT setval(pg_get_serial_sequence('metric_name', 'id'), "
    "(SELECT coalesce(max(id), 0) + 1 FROM metric_name), false), "
    "setval(pg_get_serial_sequence('metric_series', 'id'), "
    "(SELECT coalesce(max(id), 0) + 1 FROM metric_series), false)"
)
#: metric_latest as the store keeps it: each metric's highest (attempt, step), from the points.
LATEST_FROM_POINTS = """
INSERT INTO metric_latest (execution_id, component_id, name, attempt, step, value, recorded_at)
SELECT execution_id, component_id, name, attempt, step, value, recorded_at
FROM (
    SELECT s.execution_id, s.component_id, n.name, s.attempt, p.step, p.value, p.recorded_at,
           ROW_NUMBER() OVER (
               PARTITION BY s.execution_id, s.component_id, n.name
               ORDER BY s.attempt DESC, p.step DESC
           ) AS position
    FROM metric_point AS p
    JOIN metric_series AS s ON s.id = p.series_id
    JOIN metric_name AS n ON n.id = s.name_id
) AS ranked
WHERE position = 1
"""
#: Every relation that holds points or their keys (a partitioned table with its partitions).
POINT_TABLES = ("metric_name", "metric_series", "metric_point")
#: The database's size and that of ``POINT_TABLES`` (``%s``: their names), with their indexes.
PG_SIZES = (
    "SELECT pg_database_size(current_database()), ("
    "SELECT sum(CASE WHEN c.relkind = 'p' THEN ("
    "SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) AS t"
    ") ELSE pg_total_relation_size(c.oid) END)::int8 "
    "FROM pg_class AS c WHERE c.oid = ANY(%s::regclass[]))"
)
PG_KEPT_COUNTS = (
    "SELECT (SELECT count(*) FROM job), (SELECT count(*) FROM metric_point), "
    "(SELECT count(*) FROM execution)"
)

# (a) one metric's history for one run: the columns of metrics_frame, oldest first, with the
# store's joins.
SQLITE_A = """
SELECT p.id, s.execution_id, e.external_run_id, e.orchestrator, j.name, c.name, n.name,
       s.attempt, p.step, p.value, p.recorded_at
FROM metric_point AS p
JOIN metric_series AS s ON s.id = p.series_id
JOIN metric_name AS n ON n.id = s.name_id
JOIN component AS c ON c.id = s.component_id
JOIN execution AS e ON e.id = s.execution_id
JOIN job AS j ON j.id = e.job_id AND j.id = c.job_id
WHERE s.execution_id = ? AND n.name = ?
ORDER BY p.id
"""
PG_A = SQLITE_A.replace("?", "%s")

# (b) daily mean/min/max/p95 per (day, job, component, name) since a moment.
PG_B = """
SELECT timezone('UTC', date_trunc('day', timezone('UTC', p.recorded_at))) AS bucket,
       j.name AS job, c.name AS component, n.name AS name,
       avg(p.value), min(p.value), max(p.value),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY p.value)
FROM metric_point AS p
JOIN metric_series AS s ON s.id = p.series_id
JOIN metric_name AS n ON n.id = s.name_id
JOIN component AS c ON c.id = s.component_id
JOIN job AS j ON j.id = c.job_id
WHERE j.name = %s AND n.name = %s AND p.recorded_at >= %s
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""
# SQLite has no percentile function: the same linear interpolation percentile_cont computes,
# v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋]) with h = (n − 1)·0.95, from window functions.
SQLITE_B = """
WITH points AS (
    SELECT substr(p.recorded_at, 1, 10) || ' 00:00:00.000000' AS bucket,
           j.name AS job, c.name AS component, n.name AS name, p.value AS value
    FROM metric_point AS p
    JOIN metric_series AS s ON s.id = p.series_id
    JOIN metric_name AS n ON n.id = s.name_id
    JOIN component AS c ON c.id = s.component_id
    JOIN job AS j ON j.id = c.job_id
    WHERE j.name = ? AND n.name = ? AND p.recorded_at >= ?
), ranked AS (
    SELECT bucket, job, component, name, value,
           row_number() OVER (PARTITION BY bucket, job, component, name ORDER BY value) AS rn,
           (count(*) OVER (PARTITION BY bucket, job, component, name) - 1) * 0.95 AS h
    FROM points
)
SELECT bucket, job, component, name, avg(value), min(value), max(value),
       sum(CASE WHEN rn = CAST(h AS INTEGER) + 1 THEN value * (1 - (h - CAST(h AS INTEGER)))
                WHEN rn = CAST(h AS INTEGER) + 2 THEN value * (h - CAST(h AS INTEGER))
                ELSE 0.0 END)
FROM ranked
GROUP BY bucket, job, component, name
ORDER BY bucket, job, component, name
"""
# The fetch + numpy variant (SQLite reference): the points in group order, aggregated in numpy.
SQLITE_B_POINTS = """
SELECT substr(p.recorded_at, 1, 10) AS day, c.name, p.value
FROM metric_point AS p
JOIN metric_series AS s ON s.id = p.series_id
JOIN metric_name AS n ON n.id = s.name_id
JOIN component AS c ON c.id = s.component_id
JOIN job AS j ON j.id = c.job_id
WHERE j.name = ? AND n.name = ? AND p.recorded_at >= ?
ORDER BY day, c.name
"""

# (c) the latest value of every metric for the N most recent runs of a job.
SQLITE_C_LATEST = """
SELECT r.id, r.external_run_id, r.started_at, r.status, c.name, l.name, l.attempt, l.step,
       l.value, l.recorded_at
FROM (
    SELECT e.id, e.external_run_id, e.started_at, e.status
    FROM execution AS e JOIN job AS j ON j.id = e.job_id
    WHERE j.name = ?
    ORDER BY e.id DESC
    LIMIT ?
) AS r
JOIN metric_latest AS l ON l.execution_id = r.id
JOIN component AS c ON c.id = l.component_id
ORDER BY r.id DESC, c.name, l.name
"""
PG_C_LATEST = SQLITE_C_LATEST.replace("?", "%s")
SQLITE_C_POINTS = """
SELECT id, external_run_id, started_at, status, component, name, attempt, step, value,
       recorded_at
FROM (
    SELECT r.id, r.external_run_id, r.started_at, r.status, c.name AS component, n.name,
           s.attempt, p.step, p.value, p.recorded_at,
           row_number() OVER (
               PARTITION BY s.execution_id, s.component_id, n.name
               ORDER BY s.attempt DESC, p.step DESC
           ) AS position
    FROM (
        SELECT e.id, e.external_run_id, e.started_at, e.status
        FROM execution AS e JOIN job AS j ON j.id = e.job_id
        WHERE j.name = ?
        ORDER BY e.id DESC
        LIMIT ?
    ) AS r
    JOIN metric_series AS s ON s.execution_id = r.id
    JOIN metric_name AS n ON n.id = s.name_id
    JOIN metric_point AS p ON p.series_id = s.id
    JOIN component AS c ON c.id = s.component_id
) AS ranked
WHERE position = 1
ORDER BY id DESC, component, name
"""
PG_C_POINTS = """
SELECT DISTINCT ON (r.id, c.name, n.name)
       r.id, r.external_run_id, r.started_at, r.status, c.name, n.name, s.attempt, p.step,
       p.value, p.recorded_at
FROM (
    SELECT e.id, e.external_run_id, e.started_at, e.status
    FROM execution AS e JOIN job AS j ON j.id = e.job_id
    WHERE j.name = %s
    ORDER BY e.id DESC
    LIMIT %s
) AS r
JOIN metric_series AS s ON s.execution_id = r.id
JOIN metric_name AS n ON n.id = s.name_id
JOIN metric_point AS p ON p.series_id = s.id
JOIN component AS c ON c.id = s.component_id
ORDER BY r.id DESC, c.name, n.name, s.attempt DESC, p.step DESC
"""

# (d) every point of several jobs: the columns of metrics_frame, oldest first. The joins are the
# store's own (j.id = c.job_id lets the planner start from the jobs' components), so (d) compares
# the fetch paths on the same server work.
SQLITE_D = """
SELECT p.id, s.execution_id, e.external_run_id, e.orchestrator, j.name AS job,
       c.name AS component, n.name, s.attempt, p.step, p.value, p.recorded_at
FROM metric_point AS p
JOIN metric_series AS s ON s.id = p.series_id
JOIN metric_name AS n ON n.id = s.name_id
JOIN component AS c ON c.id = s.component_id
JOIN execution AS e ON e.id = s.execution_id
JOIN job AS j ON j.id = e.job_id AND j.id = c.job_id
WHERE j.name IN (SELECT value FROM json_each(?))
ORDER BY p.id
"""
PG_D = """
SELECT p.id, s.execution_id, e.external_run_id, e.orchestrator, j.name AS job,
       c.name AS component, n.name, s.attempt, p.step, p.value, p.recorded_at
FROM metric_point AS p
JOIN metric_series AS s ON s.id = p.series_id
JOIN metric_name AS n ON n.id = s.name_id
JOIN component AS c ON c.id = s.component_id
JOIN execution AS e ON e.id = s.execution_id
JOIN job AS j ON j.id = e.job_id AND j.id = c.job_id
WHERE j.name = ANY(%s)
ORDER BY p.id
"""

RawRow = tuple[Any, ...]

#: The store's column types per query, for the "hand SQL + typed DataFrame" baseline.
A_COLUMNS = {
    "metric_id": "int",
    "run_id": "int",
    "external_run_id": "category",
    "orchestrator": "category",
    "job": "category",
    "component": "category",
    "name": "category",
    "attempt": "int",
    "step": "int",
    "value": "float",
    "recorded_at": "timestamp",
}
B_COLUMNS = {
    "bucket": "timestamp",
    "job": "category",
    "component": "category",
    "name": "category",
    **dict.fromkeys(QUERY_B_AGGREGATES, "float"),
}
C_COLUMNS = {
    "run_id": "int",
    "external_run_id": "category",
    "started_at": "timestamp",
    "status": "category",
    "component": "category",
    "name": "category",
    "attempt": "int",
    "step": "int",
    "value": "float",
    "recorded_at": "timestamp",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- workload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    index: int
    job: int
    external_run_id: str
    started_at: datetime
    ended_at: datetime
    status: str
    steps: int  # steps per metric series of the final attempt
    retried: tuple[int, ...]  # components (indexes) with a failed first attempt

    def points(self) -> int:
        first_attempts = len(self.retried) * _first_attempt_steps(self.steps)
        return (len(COMPONENTS) * self.steps + first_attempts) * len(METRIC_NAMES)


def _first_attempt_steps(steps: int) -> int:
    return max(1, steps // 2)  # the failed attempt got halfway


@dataclass
class Plan:
    """Everything about the generated store that the queries need, derived from a seed."""

    points: int
    runs: list[Run]
    jobs: list[str]

    @property
    def total_points(self) -> int:
        return sum(run.points() for run in self.runs)

    def points_per_job(self) -> dict[str, int]:
        counts = dict.fromkeys(self.jobs, 0)
        for run in self.runs:
            counts[self.jobs[run.job]] += run.points()
        return counts

    def run_for_history(self) -> Run:
        """(a): a run from the middle of the data with a retried component."""
        middle = self.runs[len(self.runs) // 2 :]
        return next((run for run in middle if run.retried), middle[0])

    def frame_jobs(self, rows: int) -> tuple[list[str], int]:
        """(d): the first jobs (by name) whose points add up to closest to ``rows``."""
        chosen: list[str] = []
        total = 0
        for job, count in self.points_per_job().items():
            if chosen and abs(total + count - rows) >= abs(total - rows):
                break
            chosen.append(job)
            total += count
        return chosen, total


def make_plan(points: int, seed: int = SEED, span: timedelta = SPAN, jobs: int = JOBS) -> Plan:
    """The runs of a store of about ``points`` points of ``jobs`` jobs, started evenly over
    ``span`` up to ``T_END``."""
    rng = random.Random(seed)
    names = [f"bench_job_{k:02d}" for k in range(jobs)]
    run_count = max(jobs, round(points / POINTS_PER_RUN))
    per_series = points / run_count / len(COMPONENTS) / len(METRIC_NAMES)
    per_series /= 1 + RETRY_RATE * 0.5  # a failed first attempt records about half the steps
    spacing = span / run_count
    runs: list[Run] = []
    for index in range(run_count):
        steps = max(1, int(per_series) + (rng.random() < per_series - int(per_series)))
        retried = tuple(c for c in range(len(COMPONENTS)) if rng.random() < RETRY_RATE)
        started = T_END - span + spacing * index + timedelta(seconds=rng.randrange(60))
        attempts_steps = len(COMPONENTS) * (steps + 1)
        attempts_steps += len(retried) * (_first_attempt_steps(steps) + 1)
        runs.append(
            Run(
                index=index,
                job=index % jobs,
                external_run_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                started_at=started,
                ended_at=started + timedelta(seconds=attempts_steps * STEP_SECONDS + 30),
                status="failed" if rng.random() < 0.02 else "success",
                steps=steps,
                retried=retried,
            )
        )
    return Plan(points=points, runs=runs, jobs=names)


def point_rows(
    plan: Plan,
    execution_ids: dict[str, int],
    component_ids: dict[tuple[str, str], int],
    stamp: Callable[[datetime], Any],
    seed: int = SEED,
) -> Iterator[RawRow]:
    """Every point, run by run, in ``POINT_COLUMNS`` order; ``stamp`` converts timestamps.

    A component records all 20 metrics of a step at once (one timestamp), a step a minute;
    counters are whole numbers, gauges fractions. Retried components first record about half
    their steps with attempt 1, then all of them with attempt 2.
    """
    rng = random.Random(seed + 1)
    rand = rng.random
    scales = [
        (name, 5_000_000.0 if name.endswith(_INTEGER_SUFFIXES) else 0.0) for name in METRIC_NAMES
    ]
    step = timedelta(seconds=STEP_SECONDS)
    for run in plan.runs:
        execution_id = execution_ids[run.external_run_id]
        job = plan.jobs[run.job]
        at = run.started_at
        for c_index, component in enumerate(COMPONENTS):
            component_id = component_ids[job, component]
            attempts = [(1, run.steps)]
            if c_index in run.retried:
                attempts = [(1, _first_attempt_steps(run.steps)), (2, run.steps)]
            for attempt, steps in attempts:
                for number in range(steps):
                    at += step
                    recorded = stamp(at.replace(microsecond=int(rand() * 1_000_000)))
                    for name, scale in scales:
                        value = float(int(rand() * scale)) if scale else rand() * 1000.0
                        yield (execution_id, component_id, attempt, name, number, value, recorded)
                at += step


def split_points(
    rows: Iterator[RawRow],
    series: Iterator[tuple[int, int, int, int, int]],
    name_ids: dict[str, int],
) -> Iterator[tuple[int, int, float, Any, int]]:
    """:func:`point_rows` as ``metric_point`` holds them: ``(series_id, step, value,
    recorded_at, id)``, ids from 1 in recording order. ``series`` is :func:`plan_series`'s; each
    series a point opens must be the next of it, so both number the series alike."""
    ids: dict[tuple[Any, ...], int] = {}
    current = None
    for point_id, (execution_id, component_id, attempt, name, step, value, recorded) in enumerate(
        rows, start=1
    ):
        if execution_id != current:  # a run's series never outlive it: keep the map small
            ids.clear()
            current = execution_id
        key = (component_id, attempt, name)
        series_id = ids.get(key)
        if series_id is None:
            series_id, *planned = next(series)
            if planned != [execution_id, component_id, name_ids[name], attempt]:
                raise RuntimeError(f"point {point_id} opens a series out of plan: {planned}")
            ids[key] = series_id
        yield series_id, step, value, recorded, point_id
    if next(series, None) is not None:
        raise RuntimeError("planned series without points")


def name_rows() -> list[tuple[int, str]]:
    """The metric names with the ids the generator gives them (first name, id 1)."""
    return [(index, name) for index, name in enumerate(METRIC_NAMES, start=1)]


def copy_points_postgresql(
    raw: psycopg.Connection[Any],
    engine: sa.Engine,
    plan: Plan,
    execution_ids: dict[str, int],
    component_ids: dict[tuple[str, str], int],
) -> None:
    """The names, series and points of ``plan`` into an empty PostgreSQL store, by ``COPY``.

    The series go first (their ids are computed here, in recording order); then the partitions
    the store's maintenance would have made for them (``etl_meta.repository.partitions``), so
    every point lands in its range, not in the ``DEFAULT`` partition; then the points, whose
    ids come from ``metric_point_id_seq`` in recording order.
    """
    from etl_meta.repository import partitions

    names = name_rows()
    name_ids = {name: index for index, name in names}
    with raw.transaction(), raw.cursor() as cursor:
        with cursor.copy(PG_COPY_NAMES) as copy:
            copy.set_types(PG_COPY_NAME_TYPES)
            for row in names:
                copy.write_row(row)
        with cursor.copy(PG_COPY_SERIES) as copy:
            copy.set_types(PG_COPY_SERIES_TYPES)
            for row in plan_series(plan, execution_ids, component_ids, name_ids):
                copy.write_row(row)
        cursor.execute(PG_SET_SEQUENCES)
    partitions.ensure_ahead(engine)
    rows = point_rows(plan, execution_ids, component_ids, lambda moment: moment)
    series = plan_series(plan, execution_ids, component_ids, name_ids)
    with raw.transaction(), raw.cursor() as cursor, cursor.copy(PG_COPY_POINTS) as copy:
        copy.set_types(PG_COPY_POINT_TYPES)
        for point in split_points(rows, series, name_ids):
            copy.write_row(point[:4])  # the id: metric_point_id_seq's, in the same order


def plan_series(
    plan: Plan,
    execution_ids: dict[str, int],
    component_ids: dict[tuple[str, str], int],
    name_ids: dict[str, int],
) -> Iterator[tuple[int, int, int, int, int]]:
    """``(id, execution_id, component_id, name_id, attempt)`` of every series of ``plan``, in
    the order :func:`point_rows` first records them (ids from 1)."""
    series_id = 0
    for run in plan.runs:
        execution_id = execution_ids[run.external_run_id]
        job = plan.jobs[run.job]
        for c_index, component in enumerate(COMPONENTS):
            component_id = component_ids[job, component]
            for attempt in (1, 2) if c_index in run.retried else (1,):
                for name in METRIC_NAMES:
                    series_id += 1
                    yield series_id, execution_id, component_id, name_ids[name], attempt


def create_jobs(store: MetadataStore, plan: Plan) -> None:
    """The jobs and their components, through the store API (a chain of 4 components each)."""
    for job in plan.jobs:
        components = [
            {
                "name": name,
                # The benchmark never runs the jobs: any configuration the type accepts will do.
                "component_type": "read_csv",
                "configuration": {"path": f"{name}.csv"},
                "depends_on": [COMPONENTS[i - 1]] if i else [],
            }
            for i, name in enumerate(COMPONENTS)
        ]
        store.jobs.create({"name": job, "num_of_retries": 1, "components": components})


def execution_rows(plan: Plan, job_ids: dict[str, int], stamp: Callable[[datetime], Any]):
    return [
        (
            job_ids[plan.jobs[run.job]],
            "dagster",
            run.external_run_id,
            run.status,
            stamp(run.started_at),
            stamp(run.ended_at),
            stamp(run.ended_at),
            stamp(run.ended_at),
        )
        for run in plan.runs
    ]


# --- backends ---------------------------------------------------------------------------------


@dataclass
class Generation:
    seconds: float
    size_bytes: int
    metric_bytes: int | None
    points: int
    runs: int
    cached: bool
    steps: dict[str, float] = field(default_factory=dict)


class Backend(ABC):
    """One database: the generated store, the store API on it and a raw driver connection."""

    name: str
    url: str

    def __init__(self, workdir: Path) -> None:
        self.settings = Settings(
            _env_file=None, home=workdir, database_url=None, actor="bench@etl-meta"
        )
        self.engine: sa.Engine | None = None
        self.store: MetadataStore | None = None
        self.raw: Any = None
        self.adbc: Any = None  # opened by the first (d) ADBC reference run

    @abstractmethod
    def prepare(self, plan: Plan, fresh: bool) -> Generation:
        """Generate (or find the cached) store; how long it took and how big it is."""
        ...

    def open(self) -> MetadataStore:
        self.engine = create_engine(self.url, settings=self.settings)
        self.store = MetadataStore(engine=self.engine, settings=self.settings)
        self.open_raw()
        return self.store

    def close(self) -> None:
        if self.adbc is not None:
            self.adbc.close()
            self.adbc = None
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    @abstractmethod
    def open_raw(self) -> None: ...

    @abstractmethod
    def open_adbc(self) -> Any:
        """An ADBC connection to the same database (the (d) reference)."""

    @abstractmethod
    def describe(self) -> str: ...

    def fetchall(self, statement: str, params: Sequence[Any]) -> list[RawRow]:
        return self.raw.execute(statement, params).fetchall()

    def execution_id(self, external_run_id: str) -> int:
        rows = self.fetchall(SELECT_EXECUTION_IDS, ())
        return dict(rows)[external_run_id]


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, workdir: Path, data_dir: Path, points: int) -> None:
        super().__init__(workdir)
        # The schema's head revision and a digest of the migration scripts: a migration edited
        # in place (same revision id) must not reuse a file built by the old one.
        digest = hashlib.sha256()
        for script in sorted((schema.migrations_dir() / "versions").glob("*.py")):
            digest.update(script.name.encode() + b"\0" + script.read_bytes())
        self.prefix = f"analytics_{points}_"
        stem = (
            f"{self.prefix}g{GENERATOR_VERSION}_s{SEED}_r{schema.head_revision()}_"
            f"{digest.hexdigest()[:10]}"
        )
        self.path = data_dir / f"{stem}.sqlite"
        self.marker = data_dir / f"{stem}.json"
        self.url = f"sqlite:///{self.path}"

    def open_raw(self) -> None:
        # The same connection settings etl_meta.db gives the store's connections.
        self.raw = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
            "PRAGMA synchronous=NORMAL",
        ):
            self.raw.execute(pragma)

    def prepare(self, plan: Plan, fresh: bool) -> Generation:
        if not fresh and self.marker.is_file() and self.path.is_file():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                cached = Generation(**json.loads(self.marker.read_text()))
                cached.cached = True
                cached.size_bytes = self.path.stat().st_size
                return cached
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # This file and any built for the same --points by another generator or schema.
        for stale in self.path.parent.glob(self.prefix + "*"):
            stale.unlink(missing_ok=True)
        log(f"  sqlite: generating {plan.total_points:,} points into {self.path}")
        generation = self._generate(plan)
        self.marker.write_text(json.dumps(asdict(generation), indent=2))
        return generation

    def _generate(self, plan: Plan) -> Generation:
        steps: dict[str, float] = {}
        started = time.perf_counter()
        engine = create_engine(self.url, settings=self.settings)
        try:
            schema.upgrade(engine)
            store = MetadataStore(engine=engine, settings=self.settings)
            create_jobs(store, plan)
        finally:
            engine.dispose()
        steps["schema_and_jobs"] = time.perf_counter() - started

        def text(moment: datetime) -> str:
            return moment.astimezone(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)

        raw = sqlite3.connect(self.path, isolation_level=None)
        try:
            # Bulk-load settings, this connection only; the store's own settings come back below.
            for pragma in (
                "PRAGMA journal_mode=DELETE",
                "PRAGMA synchronous=OFF",
                "PRAGMA foreign_keys=OFF",  # ids are valid by construction
                "PRAGMA cache_size=-1000000",
            ):
                raw.execute(pragma)
            mark = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            job_ids = dict(raw.execute("SELECT name, id FROM job").fetchall())
            raw.executemany(SQLITE_INSERT_EXECUTION, execution_rows(plan, job_ids, text))
            execution_ids = dict(raw.execute(SELECT_EXECUTION_IDS).fetchall())
            component_ids = {(j, c): i for j, c, i in raw.execute(SELECT_JOB_COMPONENTS)}
            names = name_rows()
            name_ids = {name: index for index, name in names}
            raw.executemany(SQLITE_INSERT_NAME, names)
            raw.executemany(
                SQLITE_INSERT_SERIES, plan_series(plan, execution_ids, component_ids, name_ids)
            )
            rows = point_rows(plan, execution_ids, component_ids, text)
            series = plan_series(plan, execution_ids, component_ids, name_ids)
            raw.executemany(SQLITE_INSERT_POINT, split_points(rows, series, name_ids))
            raw.execute("COMMIT")
            steps["load_metric"] = time.perf_counter() - mark
            mark = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(LATEST_FROM_POINTS)
            raw.execute("COMMIT")
            steps["backfill_metric_latest"] = time.perf_counter() - mark
            mark = time.perf_counter()
            raw.execute("ANALYZE")
            raw.execute("PRAGMA journal_mode=WAL")
            steps["analyze"] = time.perf_counter() - mark
            (points,) = raw.execute("SELECT count(*) FROM metric_point").fetchone()
        finally:
            raw.close()
        if points != plan.total_points:
            raise RuntimeError(f"loaded {points} points, planned {plan.total_points}")
        return Generation(
            seconds=round(time.perf_counter() - started, 1),
            size_bytes=self.path.stat().st_size,
            metric_bytes=None,  # SQLite's dbstat is rarely compiled in
            points=points,
            runs=len(plan.runs),
            cached=False,
            steps={k: round(v, 1) for k, v in steps.items()},
        )

    def open_adbc(self) -> Any:
        import adbc_driver_sqlite.dbapi

        return adbc_driver_sqlite.dbapi.connect(self.path, autocommit=True)

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL), {self.path}"


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, workdir: Path, server_url: str, keep: str | None = None) -> None:
        super().__init__(workdir)
        server = make_url(normalize_database_url(server_url))
        #: A database named by --postgres-database is reused when it holds the planned points,
        #: and kept at the end; otherwise a scratch database lives for one run.
        self.keep = keep
        self.database = keep or f"etl_meta_bench_{os.getpid()}"
        self.url = server.set(database=self.database).render_as_string(hide_password=False)
        self._server_conninfo = _conninfo(server)
        self._conninfo = _conninfo(server.set(database=self.database))
        self.server_version = ""
        self._created = False

    def prepare(self, plan: Plan, fresh: bool) -> Generation:
        if self.keep and not fresh:
            kept = self._kept(plan)
            if kept is not None:
                return kept
        with psycopg.connect(self._server_conninfo, autocommit=True) as admin:
            name = sql.Identifier(self.database)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
            self._created = True
        log(f"  postgresql: generating {plan.total_points:,} points into {self.database}")
        steps: dict[str, float] = {}
        started = time.perf_counter()
        engine = create_engine(self.url, settings=self.settings)
        try:
            schema.upgrade(engine)
            store = MetadataStore(engine=engine, settings=self.settings)
            create_jobs(store, plan)
            steps["schema_and_jobs"] = time.perf_counter() - started
            self._load(plan, engine, steps)
        finally:
            engine.dispose()
        with psycopg.connect(self._conninfo, autocommit=True) as raw:
            (points,) = raw.execute("SELECT count(*) FROM metric_point").fetchone()
            size, metric_bytes = raw.execute(PG_SIZES, (list(POINT_TABLES),)).fetchone()
            # What _kept recognises: this generator, on this schema.
            raw.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(self.database), sql.Literal(self.generator_mark())
                )
            )
        if points != plan.total_points:
            raise RuntimeError(f"loaded {points} points, planned {plan.total_points}")
        return Generation(
            seconds=round(time.perf_counter() - started, 1),
            size_bytes=size,
            metric_bytes=metric_bytes,
            points=points,
            runs=len(plan.runs),
            cached=False,
            steps={k: round(v, 1) for k, v in steps.items()},
        )

    @staticmethod
    def generator_mark() -> str:
        """Names the generator and schema that made a kept store (its database's comment)."""
        return f"analytics_queries g{GENERATOR_VERSION} s{SEED} r{schema.head_revision()}"

    def _load(self, plan: Plan, engine: sa.Engine, steps: dict[str, float]) -> None:
        """Runs, series and points by ``COPY``, then ``metric_latest``, ``VACUUM``, ``ANALYZE``."""
        with psycopg.connect(self._conninfo, autocommit=True) as raw:
            mark = time.perf_counter()
            raw.execute("SET work_mem = '256MB'")  # this session only: the backfill's sort
            with raw.transaction():
                job_ids = dict(raw.execute("SELECT name, id FROM job").fetchall())
                with raw.cursor() as cursor:
                    cursor.executemany(
                        PG_INSERT_EXECUTION, execution_rows(plan, job_ids, lambda moment: moment)
                    )
                execution_ids = dict(raw.execute(SELECT_EXECUTION_IDS).fetchall())
                component_ids = {
                    (j, c): i for j, c, i in raw.execute(SELECT_JOB_COMPONENTS).fetchall()
                }
            copy_points_postgresql(raw, engine, plan, execution_ids, component_ids)
            steps["load_metric"] = time.perf_counter() - mark
            mark = time.perf_counter()
            with raw.transaction():
                raw.execute(LATEST_FROM_POINTS)
            steps["backfill_metric_latest"] = time.perf_counter() - mark
            mark = time.perf_counter()
            # VACUUM as well: sets hint bits and the visibility map now, as autovacuum would
            # have long ago on a live store, instead of during the first measurements.
            for table in (*POINT_TABLES, "metric_latest"):
                raw.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
            raw.execute("ANALYZE")
            steps["vacuum_analyze"] = time.perf_counter() - mark

    def _kept(self, plan: Plan) -> Generation | None:
        """The kept database, when it exists and holds this plan's points and runs."""
        with psycopg.connect(self._server_conninfo, autocommit=True) as admin:
            found = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
        if found is None:
            return None
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as raw:
                (mark,) = raw.execute(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = current_database()"
                ).fetchone()
                if mark != self.generator_mark():  # another generator's or schema's store
                    log(f"  postgresql: {self.database} was made by {mark!r}: generating again")
                    return None
                jobs, points, runs = raw.execute(PG_KEPT_COUNTS).fetchone()
                size, metric_bytes = raw.execute(PG_SIZES, (list(POINT_TABLES),)).fetchone()
        except psycopg.Error:
            return None
        if (jobs, points, runs) != (len(plan.jobs), plan.total_points, len(plan.runs)):
            return None
        return Generation(0.0, size, metric_bytes, points, runs, cached=True)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._created and not self.keep:
                with psycopg.connect(self._server_conninfo, autocommit=True) as admin:
                    name = sql.Identifier(self.database)
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    def open_raw(self) -> None:
        self.raw = psycopg.connect(self._conninfo, autocommit=True)
        version = self.raw.info.server_version
        self.server_version = f"{version // 10000}.{version % 10000}"

    def open_adbc(self) -> Any:
        import adbc_driver_postgresql.dbapi

        return adbc_driver_postgresql.dbapi.connect(self._conninfo, autocommit=True)

    def describe(self) -> str:
        return f"PostgreSQL {self.server_version}, scratch database {self.database}"


def _conninfo(url: sa.URL) -> str:
    """A libpq URL for psycopg from a SQLAlchemy URL (no ``+psycopg`` driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# --- the queries, store and hand-written ------------------------------------------------------


@dataclass
class Variant:
    """One way of answering a query: a callable returning something with a length."""

    key: str
    label: str
    call: Callable[[], Any]
    inner: int = 1
    seconds: list[float] = field(default_factory=list)  # per call, one entry per timed run

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Query:
    key: str
    title: str
    variants: list[Variant]
    baseline: str  # the variant key the store is compared with
    rows: int = 0
    target: str = ""
    notes: list[str] = field(default_factory=list)


def build_queries(backend: Backend, plan: Plan, frame_rows: int) -> list[Query]:
    store = backend.store
    assert store is not None
    pg = backend.name == "postgresql"
    since_param: Any = SINCE if pg else SINCE.strftime(SQLITE_TIMESTAMP_FORMAT)
    run = plan.run_for_history()
    run_id = backend.execution_id(run.external_run_id)
    job = plan.jobs[0]
    frame_jobs, _ = plan.frame_jobs(frame_rows)

    a = Query(
        "a",
        f"one run's history of one metric ({QUERY_A_NAME}, run {run_id})",
        [
            Variant(
                "store",
                "store",
                lambda: metrics_frame(store, run=run_id, name=QUERY_A_NAME, attempts="all"),
            ),
            Variant(
                "hand",
                "hand SQL",
                lambda: backend.fetchall(PG_A if pg else SQLITE_A, (run_id, QUERY_A_NAME)),
            ),
            Variant(
                "frame",
                FRAME_LABEL,
                lambda: rows_frame(backend, PG_A if pg else SQLITE_A, (run_id, QUERY_A_NAME)),
            ),
            Variant(
                "typed",
                TYPED_LABEL,
                lambda: typed_frame(
                    backend, PG_A if pg else SQLITE_A, (run_id, QUERY_A_NAME), A_COLUMNS
                ),
            ),
        ],
        baseline="hand",
        target=f"store ≤ {TARGET_RATIO} × hand, ≤ {TARGET_RATIO_TYPED} × typed",
    )
    b_params = (job, QUERY_B_NAME, since_param)
    b_variants = [
        Variant(
            "store",
            "store",
            lambda: aggregate_metrics(
                store,
                job=job,
                name=QUERY_B_NAME,
                every="1d",
                aggregates=QUERY_B_AGGREGATES,
                since=SINCE,
                attempts="all",
            ),
        ),
        Variant(
            "hand",
            "hand SQL (percentile_cont)" if pg else "hand SQL (window percentile)",
            lambda: backend.fetchall(PG_B if pg else SQLITE_B, b_params),
        ),
        Variant(
            "frame", FRAME_LABEL, lambda: rows_frame(backend, PG_B if pg else SQLITE_B, b_params)
        ),
        Variant(
            "typed",
            TYPED_LABEL,
            lambda: typed_frame(backend, PG_B if pg else SQLITE_B, b_params, B_COLUMNS),
        ),
    ]
    if not pg:
        b_variants.append(Variant("numpy", "fetch + numpy", lambda: numpy_daily(backend, b_params)))
    b = Query(
        "b",
        f"daily mean/min/max/p95 of {QUERY_B_NAME}, {job}, 30 days",
        b_variants,
        baseline="hand",
        target=f"store ≤ {TARGET_RATIO} × hand, ≤ {TARGET_RATIO_TYPED} × typed",
    )
    c_params = (job, QUERY_C_RUNS)
    c = Query(
        "c",
        f"latest value of every metric, {QUERY_C_RUNS} most recent runs of {job}",
        [
            Variant("store", "store", lambda: latest_metrics(store, job, runs=QUERY_C_RUNS)),
            Variant(
                "hand",
                "hand SQL (metric_latest)",
                lambda: backend.fetchall(PG_C_LATEST if pg else SQLITE_C_LATEST, c_params),
            ),
            Variant(
                "frame",
                FRAME_LABEL,
                lambda: rows_frame(backend, PG_C_LATEST if pg else SQLITE_C_LATEST, c_params),
            ),
            Variant(
                "typed",
                TYPED_LABEL,
                lambda: typed_frame(
                    backend, PG_C_LATEST if pg else SQLITE_C_LATEST, c_params, C_COLUMNS
                ),
            ),
            Variant(
                "points",
                "hand SQL, raw points (DISTINCT ON)" if pg else "hand SQL, raw points (window)",
                lambda: backend.fetchall(PG_C_POINTS if pg else SQLITE_C_POINTS, c_params),
            ),
        ],
        baseline="hand",
        target=f"store ≤ {TARGET_RATIO} × metric_latest query, ≤ {TARGET_RATIO_TYPED} × typed",
    )
    d_params: tuple[Any, ...] = (frame_jobs,) if pg else (json.dumps(frame_jobs),)
    d_sql = PG_D if pg else SQLITE_D
    d = Query(
        "d",
        f"frame of {len(frame_jobs)} jobs' points into pandas",
        [
            Variant("store", "store", lambda: metrics_frame(store, job=frame_jobs, attempts="all")),
            Variant("read_sql", "pandas.read_sql", lambda: read_sql(backend, d_sql, d_params)),
            Variant("fetchall", "driver fetchall", lambda: backend.fetchall(d_sql, d_params)),
            # Not on SQLite: the ADBC SQLite driver links its own SQLite, which must not open
            # the file the store's sqlite3 has open in this process (broken POSIX locks).
            *(
                [
                    Variant(
                        "adbc",
                        "hand SQL via ADBC + to_pandas",
                        lambda: adbc_frame(backend, d_sql, d_params),
                    )
                ]
                if pg
                else []
            ),
        ],
        baseline="read_sql",
        target=f"≥ {TARGET_FRAME_ROWS_PER_S:,} rows/s" if pg else "(none on SQLite)",
    )
    return [a, b, c, d]


def rows_frame(backend: Backend, statement: str, params: Sequence[Any]) -> pd.DataFrame:
    """The hand-written query's rows in a DataFrame, untyped: the least a frame API costs."""
    return pd.DataFrame(backend.fetchall(statement, params))


def typed_frame(
    backend: Backend, statement: str, params: Sequence[Any], columns: dict[str, str]
) -> pd.DataFrame:
    """The hand-written query's rows as the frame the store returns, typed with plain pandas:
    categoricals, ``datetime64[us, UTC]``, ``int64``/``float64``, ``str``. What a frame with
    the store's types costs when written by hand."""
    frame = pd.DataFrame.from_records(backend.fetchall(statement, params), columns=list(columns))
    for name, kind in columns.items():
        if kind == "category":
            frame[name] = frame[name].astype("category")
        elif kind == "timestamp":
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601").dt.as_unit("us")
        elif kind == "text":
            frame[name] = frame[name].astype("str")
        else:
            frame[name] = frame[name].astype("int64" if kind == "int" else "float64")
    return frame


def adbc_frame(backend: Backend, statement: str, params: Sequence[Any]) -> pd.DataFrame:
    """(d) reference: the joined hand-written query read by the ADBC driver straight into
    Arrow (binary ``COPY`` on PostgreSQL, parameters bound by psycopg as for any ``COPY``),
    then ``to_pandas()``: the best tool, used by hand, without the store's narrow read."""
    if backend.adbc is None:
        backend.adbc = backend.open_adbc()
    with backend.adbc.cursor() as cursor:
        if isinstance(backend, PostgresBackend):
            cursor.execute(psycopg.ClientCursor(backend.raw).mogrify(statement, params))
        else:
            cursor.execute(statement, params)
        return cursor.fetch_arrow_table().to_pandas()


def read_sql(backend: Backend, statement: str, params: Sequence[Any]) -> pd.DataFrame:
    with warnings.catch_warnings():
        # pandas warns that it only tests sqlite3 among raw DBAPI connections.
        warnings.simplefilter("ignore", UserWarning)
        return pd.read_sql(statement, backend.raw, params=params)


def numpy_daily(backend: Backend, params: Sequence[Any]) -> list[RawRow]:
    """(b) on SQLite: fetch the points in group order, aggregate each group with numpy."""
    rows = backend.fetchall(SQLITE_B_POINTS, params)
    if not rows:
        return []
    days, components, values = zip(*rows, strict=True)
    data = np.asarray(values, dtype=np.float64)
    keys = list(zip(days, components, strict=True))
    bounds = [0, *(i for i in range(1, len(keys)) if keys[i] != keys[i - 1]), len(keys)]
    out = []
    for start, end in itertools.pairwise(bounds):
        group = data[start:end]
        out.append(
            (
                *keys[start],
                group.mean(),
                group.min(),
                group.max(),
                float(np.percentile(group, 95)),  # linear interpolation, as percentile_cont
            )
        )
    return out


# --- correctness ------------------------------------------------------------------------------


def check_results(query: Query, results: dict[str, Any]) -> int:
    """The store and the hand-written variants return the same rows; returns the row count."""
    store = results["store"]
    if "typed" in results:
        # The typed baseline builds exactly the store's frame (values, order, dtypes).
        pd.testing.assert_frame_equal(store, results["typed"], check_exact=False, rtol=1e-9)
    if query.key in ("a", "d"):
        reference = results["fetchall" if query.key == "d" else "hand"]
        ids = [row[0] for row in reference]
        values = np.array([row[9] for row in reference], dtype=np.float64)
        if store["metric_id"].tolist() != ids:
            raise RuntimeError(f"({query.key}) store and hand-written rows differ (ids)")
        if not np.array_equal(store["value"].to_numpy(), values):
            raise RuntimeError(f"({query.key}) store and hand-written rows differ (values)")
        if query.key == "d" and len(results["read_sql"]) != len(ids):
            raise RuntimeError("(d) read_sql returned a different number of rows")
        stamps = pd.to_datetime(pd.Series([row[10] for row in reference]), utc=True)
        if not (store["recorded_at"].reset_index(drop=True) == stamps).all():
            raise RuntimeError(f"({query.key}) store and hand-written timestamps differ")
        return len(ids)
    if "frame" in results and len(results["frame"]) != len(store):
        raise RuntimeError(f"({query.key}) store and hand-written frame sizes differ")
    if query.key == "b":
        for key in [k for k in ("hand", "numpy") if k in results]:
            rows = results[key]
            frame = store[["mean", "min", "max", "p95"]].to_numpy(dtype=np.float64)
            other = np.array([row[-4:] for row in rows], dtype=np.float64)
            groups = [(row[1] if key == "numpy" else row[2]) for row in rows]
            if len(rows) != len(store) or not np.allclose(frame, other, rtol=1e-9):
                raise RuntimeError(f"(b) store and {key} aggregates differ")
            if store["component"].astype(str).tolist() != groups:
                raise RuntimeError(f"(b) store and {key} groups differ")
        return len(store)
    # (c): the metric_latest table and the raw points agree with the store's frame.
    expected = [
        (int(r), str(comp), str(name), int(att), int(step), float(v))
        for r, comp, name, att, step, v in zip(
            store["run_id"],
            store["component"],
            store["name"],
            store["attempt"],
            store["step"],
            store["value"],
            strict=True,
        )
    ]
    for key in ("hand", "points"):
        got = [(row[0], row[4], row[5], row[6], row[7], row[8]) for row in results[key]]
        if got != expected:
            raise RuntimeError(f"(c) store and {key} rows differ")
    return len(expected)


# --- measurement ------------------------------------------------------------------------------


def timed(call: Callable[[], Any], inner: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(inner):
        call()
    return (time.perf_counter() - start) / inner


def calls_per_run(call: Callable[[], Any]) -> int:
    """How many calls of ``call`` make one timed run last about ``MIN_RUN_SECONDS``, from
    warm calls: a first call compiles statements, prepares them on the server and fills
    caches, which later calls do not repeat. Sized from the first call instead, a variant
    with a slower first call got fewer calls per run (the store 13, the hand query 50, in
    (a) on PostgreSQL), and each run starts after ``gc.collect()`` has swept the CPU caches,
    so its few calls measured mostly that cold start."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < CALIBRATION_SECONDS and count < MAX_INNER:
        call()
        count += 1
    return max(1, min(MAX_INNER, math.ceil(count * MIN_RUN_SECONDS / max(elapsed, 1e-6))))


def run_query(query: Query, repeats: int) -> None:
    # Warm-up: one call each (caches, statement compilation) and the correctness check; then
    # how many calls make one timed run of a fast query last about MIN_RUN_SECONDS. A call
    # that alone took that long is timed once per run, without more calls to size it.
    results: dict[str, Any] = {}
    slow: set[str] = set()
    for variant in query.variants:
        start = time.perf_counter()
        results[variant.key] = variant.call()
        if time.perf_counter() - start >= MIN_RUN_SECONDS:
            slow.add(variant.key)
    query.rows = check_results(query, results)
    del results
    for variant in query.variants:
        variant.inner = 1 if variant.key in slow else calls_per_run(variant.call)
    for repeat in range(repeats):
        order = query.variants if repeat % 2 == 0 else query.variants[::-1]
        for variant in order:
            variant.seconds.append(timed(variant.call, variant.inner))


def profile_store(query: Query, top: int) -> str:
    variant = next(v for v in query.variants if v.key == "store")
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    variant.call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run_backend(backend: Backend, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    generation = backend.prepare(plan, args.fresh)
    what = "cached, generated earlier in" if generation.cached else "generated in"
    log(
        f"  {backend.name}: {what} {generation.seconds:.1f}s, "
        f"{generation.size_bytes / 1e9:.2f} GB ({time.perf_counter() - started:.1f}s now)"
    )
    backend.open()
    log(f"{backend.name}: {backend.describe()}")
    queries = build_queries(backend, plan, args.frame_rows)
    summary: dict[str, Any] = {
        "backend": backend.name,
        "database": backend.describe(),
        "generation": asdict(generation),
        "load_average": {"before": load_average()},
        "queries": [],
    }
    for query in queries:
        if args.only and query.key not in args.only:
            continue
        mark = time.perf_counter()
        run_query(query, args.repeats)
        log(
            f"  {backend.name} ({query.key}) {query.rows:,} rows, "
            + ", ".join(f"{v.key} {v.median * 1000:.2f} ms" for v in query.variants)
            + f"  [{time.perf_counter() - mark:.1f}s]"
        )
        result = summarize(backend, query)
        if args.profile:
            result["profile"] = profile_store(query, args.profile_top)
        summary["queries"].append(result)
    summary["load_average"]["after"] = load_average()
    return summary


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (other work on the machine moves the figures)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def summarize(backend: Backend, query: Query) -> dict[str, Any]:
    variants = {v.key: v for v in query.variants}
    store, baseline = variants["store"], variants[query.baseline]
    ratio = store.median / baseline.median
    result: dict[str, Any] = {
        "query": query.key,
        "title": query.title,
        "rows": query.rows,
        "baseline": query.baseline,
        "target": query.target,
        "ratio": round(ratio, 3),
        # Store ÷ the same rows as the same typed frame built by hand: the store's own cost.
        "ratio_typed": (
            round(store.median / variants["typed"].median, 3) if "typed" in variants else None
        ),
        "variants": {
            v.key: {
                "label": v.label,
                "median_seconds": v.median,
                "rows_per_s": round(query.rows / v.median),
                "calls_per_run": v.inner,
                "seconds": [round(s, 6) for s in v.seconds],
            }
            for v in query.variants
        },
    }
    if query.key == "d":
        rate = query.rows / store.median
        result["below_target"] = backend.name == "postgresql" and rate < TARGET_FRAME_ROWS_PER_S
    else:
        typed = result["ratio_typed"]
        over_typed = typed is not None and typed > TARGET_RATIO_TYPED
        result["below_target"] = ratio > TARGET_RATIO or over_typed
    return result


# --- report -----------------------------------------------------------------------------------


def format_report(document: dict[str, Any]) -> str:
    lines = [
        f"analytics queries: {document['points']:,} points, {document['runs']:,} runs, "
        f"{JOBS} jobs × {len(COMPONENTS)} components, {len(METRIC_NAMES)} metric names; "
        f"median of {document['repeats']} runs",
    ]
    for r in document["results"]:
        g = r["generation"]
        how = "cached; generated earlier in" if g["cached"] else "generated in"
        lines += [
            "",
            f"{r['backend']}: {r['database']}",
            f"  data: {how} {g['seconds']:.0f}s, {_size(g['size_bytes'])}"
            + (
                f" (metric_name, metric_series, metric_point + indexes {_size(g['metric_bytes'])})"
                if g["metric_bytes"]
                else ""
            ),
        ]
        load = r["load_average"]
        if load["before"] and load.get("after"):
            lines.append(
                f"  load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after "
                f"({os.cpu_count()} CPUs)"
            )
        for q in r["queries"]:
            lines += _format_query(q)
    return "\n".join(lines)


def _format_query(q: dict[str, Any]) -> list[str]:
    variants = q["variants"]
    store = variants["store"]
    lines = [f"  ({q['query']}) {q['title']}: {q['rows']:,} rows"]
    verdict = "  BELOW TARGET" if q["below_target"] else ""
    base = variants[q["baseline"]]
    if q["query"] == "d":
        lines.append(
            f"      store {_time(store['median_seconds'])} = {store['rows_per_s']:>9,} rows/s"
            f"   {base['label']} {_time(base['median_seconds'])} = "
            f"{base['rows_per_s']:,} rows/s   ratio (time) {q['ratio']:.2f}"
            f"   target {q['target']}{verdict}"
        )
    else:
        lines.append(
            f"      store {_time(store['median_seconds'])}   {base['label']} "
            f"{_time(base['median_seconds'])}   ratio {q['ratio']:.2f} "
            f"(target {q['target']}){verdict}"
        )
        if q.get("ratio_typed") is not None:
            typed = variants["typed"]
            lines.append(
                f"      store {_time(store['median_seconds'])}   {typed['label']} "
                f"{_time(typed['median_seconds'])}   ratio {q['ratio_typed']:.2f}"
            )
    for key, v in variants.items():
        if key in ("store", q["baseline"]) or (key == "typed" and q.get("ratio_typed")):
            continue
        ratio = store["median_seconds"] / v["median_seconds"]
        extra = f" = {v['rows_per_s']:,} rows/s" if q["query"] == "d" else ""
        lines.append(
            f"      reference: {v['label']} {_time(v['median_seconds'])}{extra}"
            f"   (store/this {ratio:.2f})"
        )
    spread = ", ".join(
        f"{key} {_time(min(v['seconds']))}–{_time(max(v['seconds']))}"
        for key, v in variants.items()
    )
    lines.append(f"      range {spread}")
    return lines


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.2f} ms"


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=5_000_000, help="metric points to generate")
    parser.add_argument(
        "--frame-rows",
        type=int,
        default=1_000_000,
        help="rows of the (d) frame (whole jobs; at most half the points)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each variant")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or None,
        help=f"PostgreSQL server URL to create the scratch database from (or ${POSTGRES_ENV})",
    )
    parser.add_argument(
        "--postgres-database",
        metavar="NAME",
        help="generate the PostgreSQL store into this database once and keep it: later runs "
        "with the same --points reuse it (default: a scratch database dropped at the end)",
    )
    parser.add_argument(
        "--backend",
        choices=("all", "sqlite", "postgresql"),
        default="all",
        help="run only one backend (postgresql needs a URL)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "etl_meta_bench_analytics",
        help="where the generated SQLite store is cached between runs",
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate the cached SQLite store")
    parser.add_argument(
        "--only", nargs="+", choices=("a", "b", "c", "d"), help="measure only these queries"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one more store call of each query"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="functions in the profile")
    args = parser.parse_args(argv)
    if args.points < 10_000 or args.repeats < 1 or args.frame_rows < 1:
        parser.error("--points must be at least 10000, --repeats and --frame-rows at least 1")
    if args.backend == "postgresql" and not args.postgres_url:
        parser.error(f"--backend postgresql needs --postgres-url or ${POSTGRES_ENV}")
    args.frame_rows = min(args.frame_rows, args.points // 2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    plan = make_plan(args.points)
    results: list[dict[str, Any]] = []
    unreachable = False
    with tempfile.TemporaryDirectory(prefix="etl_meta_bench_") as tmp:
        backends: list[Backend] = []
        if args.backend in ("all", "sqlite"):
            backends.append(SqliteBackend(Path(tmp), args.data_dir, args.points))
        if args.backend in ("all", "postgresql") and args.postgres_url:
            backends.append(PostgresBackend(Path(tmp), args.postgres_url, args.postgres_database))
        for backend in backends:
            try:
                results.append(run_backend(backend, plan, args))
            except (psycopg.OperationalError, sa.exc.OperationalError) as exc:
                log(f"{backend.name}: cannot connect, skipped: {exc}")
                unreachable = True
            finally:
                backend.close()
    document = {
        "points": plan.total_points,
        "runs": len(plan.runs),
        "jobs": JOBS,
        "frame_jobs": plan.frame_jobs(args.frame_rows)[0],
        "repeats": args.repeats,
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "psycopg": psycopg.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "cpus": os.cpu_count(),
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    table = format_report(document)
    for r in results:
        for q in r["queries"]:
            if "profile" in q:
                log(f"\n--- cProfile of the store's ({q['query']}) on {r['backend']} ---")
                log(q.pop("profile"))
    if args.json:
        log(table)
        print(json.dumps(document, indent=2))
    else:
        print(table)
        log(f"\n(total {time.perf_counter() - started:.0f}s)")
    # The figures never decide the exit code (a measurement, not a test); a dead server does.
    return 2 if unreachable else 0


if __name__ == "__main__":
    sys.exit(main())
