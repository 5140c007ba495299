"""The analyst queries use the indexes built for them (PostgreSQL's planner, after ANALYZE).

Each test EXPLAINs the very statement the API runs (``metrics_query``, ``aggregate_query``,
``latest_query``), bound the way :mod:`etl_meta.analytics.fetch` binds it for ``COPY``
(client-side, so the planner sees the values), and asserts which index reads ``metric`` or
``metric_latest``:

(a) one run's points of one metric      → ``uq_metric_execution_id_component_id_attempt_name_step``
    (the joined statement, and the packed statement a run's read runs on PostgreSQL)
(b) one metric of one job over time     → ``ix_metric_component_id_name_recorded_at``
(c) latest values of a job's last runs  → ``pk_metric_latest``
(d) a whole frame of a job (as ids)   → ``ix_metric_component_id_name_recorded_at``, one bitmap scan

and that the "final attempt" subquery every metric query carries probes ``pk_metric_latest``
rather than scanning ``metric_latest`` once per point.

The data is generated in bulk with SQL (thousands of runs take seconds this way, minutes through
the store's API): job ``a`` with 3000 runs and job ``b`` with 1000, each run recording 3 metrics
on each of 2 components, ``metric_latest`` filled as the store would. A sanity check reads it back
through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import latest_metrics, metrics_frame
from etl_meta.analytics.metrics import aggregate_query, latest_query, metrics_query
from etl_meta.analytics.queries import metrics_shaped
from tests.backends import postgresql_only
from tests.factories import T0, Factory

RUNS_A = 3000
RUNS_B = 1000
NAMES = ("rows", "bytes", "nulls")
UNIQUE_POINT = "uq_metric_execution_id_component_id_attempt_name_step"
METRIC_OVER_TIME = "ix_metric_component_id_name_recorded_at"
RETRIED_STEPS = "ix_metric_latest_retried"
LATEST_PK = "pk_metric_latest"

_RUNS = """
INSERT INTO execution
    (job_id, orchestrator, external_run_id, status, started_at, ended_at, created_at, updated_at)
SELECT job.id, 'dagster', job.name || '-' || g, 'success',
       %(t0)s + g * interval '1 hour', %(t0)s + g * interval '1 hour' + interval '10 minutes',
       now(), now()
FROM job CROSS JOIN generate_series(1, %(runs)s) AS g
WHERE job.name = %(job)s
"""
_POINTS = """
INSERT INTO metric (execution_id, component_id, attempt, name, step, value, recorded_at)
SELECT execution.id, component.id, 1, names.name, 0, (execution.id * 7) %% 100,
       execution.started_at + interval '1 minute'
FROM execution
JOIN component ON component.job_id = execution.job_id
CROSS JOIN unnest(%(names)s::text[]) AS names(name)
"""
_LATEST = """
INSERT INTO metric_latest (execution_id, component_id, name, attempt, step, value, recorded_at)
SELECT DISTINCT ON (execution_id, component_id, name)
       execution_id, component_id, name, attempt, step, value, recorded_at
FROM metric
ORDER BY execution_id, component_id, name, attempt DESC, step DESC
"""


# EXPLAIN plans are PostgreSQL's: SQLite's planner is not under test.
pytestmark = postgresql_only()


@pytest.fixture
def pg_store(store: MetadataStore) -> MetadataStore:
    return store


@pytest.fixture
def generated(pg_store: MetadataStore) -> MetadataStore:
    factory = Factory(pg_store)
    factory.job(name="a")
    factory.job(name="b")
    with pg_store.transaction() as session:
        driver: Any = session.connection().connection.driver_connection
        with driver.cursor() as cursor:
            cursor.execute(_RUNS, {"t0": T0, "runs": RUNS_A, "job": "a"})
            cursor.execute(_RUNS, {"t0": T0, "runs": RUNS_B, "job": "b"})
            cursor.execute(_POINTS, {"names": list(NAMES)})
            cursor.execute(_LATEST)
            cursor.execute("ANALYZE")
    return pg_store


def plan(store: MetadataStore, query: Any, *, seqscan: bool = True) -> dict[str, Any]:
    """The JSON plan of ``query``, bound client-side as ``fetch`` binds it for COPY."""
    with store.transaction(readonly=True) as session:
        connection = session.connection()
        compiled = query.compile(
            dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
        )
        with psycopg.ClientCursor(connection.connection.driver_connection) as cursor:
            if not seqscan:
                cursor.execute("SET LOCAL enable_seqscan = off")  # this transaction only
            cursor.execute(f"EXPLAIN (FORMAT JSON) {compiled.string}", compiled.params)
            return cursor.fetchone()[0][0]["Plan"]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def reads_of(root: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """Every scan of ``table`` (a bitmap heap scan is reported with its bitmap index scan)."""
    found = []
    for node in nodes(root):
        if node.get("Relation Name") != table:
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            index = next(n for n in nodes(node) if n["Node Type"] == "Bitmap Index Scan")
            node = {**node, "Index Name": index["Index Name"], "Index Cond": index["Index Cond"]}
        found.append(node)
    return found


def describe(root: dict[str, Any]) -> str:
    return "; ".join(
        f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}".strip()
        for n in nodes(root)
        if "Scan" in n["Node Type"]
    )


def assert_final_attempt_reads_the_retried_steps_index(root: dict[str, Any]) -> None:
    """``attempts="final"`` looks for a later attempt among retried steps only: in the partial
    index of ``metric_latest`` rows with ``attempt > 1``, never the whole table."""
    latest = reads_of(root, "metric_latest")
    assert latest, describe(root)
    for node in latest:
        assert node.get("Index Name") == RETRIED_STEPS, describe(root)


def test_generated_data_reads_back(generated):
    latest = latest_metrics(generated, "a", runs=100)
    assert len(latest) == 100 * 2 * len(NAMES)
    assert latest["external_run_id"].iloc[0] == f"a-{RUNS_A}"
    assert len(metrics_frame(generated, run=f"a-{RUNS_A}", name="rows")) == 2


def test_one_runs_points_use_the_unique_point_index(generated):
    root = plan(generated, metrics_query(generated, run=f"a-{RUNS_A // 2}", name="rows"))
    metric = reads_of(root, "metric")
    assert [n.get("Index Name") for n in metric] == [UNIQUE_POINT], describe(root)
    assert "execution_id =" in metric[0]["Index Cond"], describe(root)
    assert_final_attempt_reads_the_retried_steps_index(root)


def test_one_metric_over_time_uses_the_component_name_time_index(generated):
    since = T0 + timedelta(hours=RUNS_A - 48)  # the last two days of job a
    query = aggregate_query(generated, job="a", name="rows", every="1d", since=since)
    root = plan(generated, query)
    metric = reads_of(root, "metric")
    assert {n.get("Index Name") for n in metric} == {METRIC_OVER_TIME}, describe(root)
    condition = metric[0]["Index Cond"]
    assert "component_id" in condition and "recorded_at >=" in condition, describe(root)
    assert_final_attempt_reads_the_retried_steps_index(root)


def test_latest_values_of_recent_runs_use_the_metric_latest_key(generated):
    query = latest_query(generated, "a", runs=100)
    # With a few tens of thousands of rows, reading all of metric_latest into a hash costs the
    # planner less than 100 index probes, so it picks a sequential scan. enable_seqscan = off
    # (for this one transaction) asserts that the key is usable for the join, which is what
    # matters once metric_latest holds millions of rows.
    root = plan(generated, query, seqscan=False)
    latest = reads_of(root, "metric_latest")
    assert [n.get("Index Name") for n in latest] == [LATEST_PK], describe(root)
    assert "execution_id" in latest[0]["Index Cond"], describe(root)


def test_a_whole_frame_of_a_job_reads_its_components_points_by_the_component_index(generated):
    """A job's whole frame (read without ORDER BY, sorted afterwards) finds the points of the
    job's components through the component index, not by scanning every point."""
    shaped = metrics_shaped(generated, job="b", attempts="all", unordered=True)
    # 6,000 of 24,000 points: at this size a sequential scan costs the planner less (as above).
    root = plan(generated, shaped.statement(), seqscan=False)
    metric = reads_of(root, "metric")
    assert [n.get("Index Name") for n in metric] == [METRIC_OVER_TIME], describe(root)
    assert "component_id" in (metric[0].get("Index Cond") or metric[0].get("Recheck Cond", "")), (
        describe(root)
    )
