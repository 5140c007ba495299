"""The analyst queries use the indexes built for them (PostgreSQL's planner, after ANALYZE).

Each test EXPLAINs the very statement the API runs (``metrics_query``, ``aggregate_query``,
``latest_query``), bound the way :mod:`etl_meta.analytics.fetch` binds it for ``COPY``
(client-side, so the planner sees the values), and asserts which index reads the points
(``metric_series``, then ``metric_point``'s partitions: docs/internals/metric-storage.md) or
``metric_latest``:

(a) one run's points of one metric      → the series' unique key
    (``uq_metric_series_execution_id_component_id_name_id_attempt``) with ``execution_id =``,
    then each partition's primary key (``metric_point_<low>_pkey``) by series id
(b) one metric of one job over a window → the series by ``ix_metric_series_component_id_name_id``
    (component and name) then the points by key, or the window's blocks by the BRIN index on
    ``recorded_at``, whichever costs less; never every point
(c) latest values of a job's last runs  → ``pk_metric_latest``
(d) a whole frame of a job              → ``ix_metric_series_component_id_name_id`` for its series

and that the "final attempt" subquery every metric query carries probes ``ix_metric_latest_retried``
rather than scanning ``metric_latest`` once per point.

A partition's primary key is probed once per series, so the plan reaches the points through an
``Append`` of every partition; the ranges a series id cannot fall into are pruned at run time.
So (a) and (b) run ``EXPLAIN ANALYZE`` and judge the partition scans that ran: the empty
partitions (the ones ahead of the series and ``DEFAULT``, which a store always has) are planned
as sequential scans of nothing and never executed.

The data is generated in bulk with SQL (thousands of runs take seconds this way, minutes through
the store's API): job ``a`` with 3000 runs and job ``b`` with 1000, each run recording 3 metrics
on each of 2 components (one point per series, the series numbered in run order as the store's
writers number them), ``metric_latest`` filled as the store would. A sanity check reads it back
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
UNIQUE_SERIES = "uq_metric_series_execution_id_component_id_name_id_attempt"
SERIES_OVER_TIME = "ix_metric_series_component_id_name_id"
POINTS = "metric_point"  # the partitioned table: its partitions are metric_point_<low>, _default
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
_NAMES = """
INSERT INTO metric_name (name) SELECT unnest(%(names)s::text[]) ORDER BY 1
"""
# Series in run order (ids from the sequence, so a run's series are adjacent and ranges of ids are
# spans of time, as the store writes them), then one point per series.
_SERIES = """
INSERT INTO metric_series (execution_id, component_id, name_id, attempt)
SELECT execution.id, component.id, metric_name.id, 1
FROM execution
JOIN component ON component.job_id = execution.job_id
CROSS JOIN metric_name
ORDER BY execution.id, component.id, metric_name.id
"""
_POINTS = """
INSERT INTO metric_point (series_id, step, value, recorded_at)
SELECT metric_series.id, 0, mod(execution.id * 7, 100), execution.started_at + interval '1 minute'
FROM metric_series
JOIN execution ON execution.id = metric_series.execution_id
ORDER BY metric_series.id
"""
_LATEST = """
INSERT INTO metric_latest (execution_id, component_id, name, attempt, step, value, recorded_at)
SELECT DISTINCT ON (s.execution_id, s.component_id, n.name)
       s.execution_id, s.component_id, n.name, s.attempt, p.step, p.value, p.recorded_at
FROM metric_point AS p
JOIN metric_series AS s ON s.id = p.series_id
JOIN metric_name AS n ON n.id = s.name_id
ORDER BY s.execution_id, s.component_id, n.name, s.attempt DESC, p.step DESC
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
            cursor.execute(_NAMES, {"names": list(NAMES)})
            cursor.execute(_SERIES)
            cursor.execute(_POINTS)
            cursor.execute(_LATEST)
    # VACUUM as well as ANALYZE: the visibility map is then set, as autovacuum would have set it
    # on a live store, and not whenever autovacuum happens to reach the new rows, which moves
    # the cost of index scans (and so the plans) from one run to the next.
    autocommit = pg_store.engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    return pg_store


def plan(
    store: MetadataStore, query: Any, *, seqscan: bool = True, analyze: bool = False
) -> dict[str, Any]:
    """The JSON plan of ``query``, bound client-side as ``fetch`` binds it for COPY; with
    ``analyze``, run too (each node then has its ``Actual Loops``)."""
    explain = "EXPLAIN (ANALYZE, FORMAT JSON)" if analyze else "EXPLAIN (FORMAT JSON)"
    with store.transaction(readonly=True) as session:
        connection = session.connection()
        compiled = query.compile(
            dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
        )
        with psycopg.ClientCursor(connection.connection.driver_connection) as cursor:
            if not seqscan:
                cursor.execute("SET LOCAL enable_seqscan = off")  # this transaction only
            cursor.execute(f"{explain} {compiled.string}", compiled.params)
            return cursor.fetchone()[0][0]["Plan"]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def reads_of(root: dict[str, Any], table: str, *, partitions: bool = False) -> list[dict[str, Any]]:
    """Every scan of ``table`` (a bitmap heap scan is reported with its bitmap index scan);
    with ``partitions``, of every relation whose name starts with ``table``."""
    found = []
    for node in nodes(root):
        relation = node.get("Relation Name", "")
        if relation != table and not (partitions and relation.startswith(table)):
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            index = next(n for n in nodes(node) if n["Node Type"] == "Bitmap Index Scan")
            node = {**node, "Index Name": index["Index Name"], "Index Cond": index["Index Cond"]}
        found.append(node)
    return found


def describe(root: dict[str, Any]) -> str:
    def loops(node: dict[str, Any]) -> str:
        return f" (loops {node['Actual Loops']})" if "Actual Loops" in node else ""

    return "; ".join(
        f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}".strip()
        + loops(n)
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


def assert_points_read_by_series_key(root: dict[str, Any]) -> None:
    """Every partition scan that ran (an ``EXPLAIN ANALYZE`` plan) probes that partition's
    primary key ``(series_id, step)`` by series id: no sequential scan of the points, no other
    index. At least one ran."""
    ran = [n for n in reads_of(root, POINTS, partitions=True) if n["Actual Loops"] > 0]
    assert ran, describe(root)
    for node in ran:
        primary_key = f"{node['Relation Name']}_pkey"
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), describe(root)
        assert node.get("Index Name") == primary_key, describe(root)
        assert "series_id =" in node["Index Cond"], describe(root)


def test_generated_data_reads_back(generated):
    latest = latest_metrics(generated, "a", runs=100)
    assert len(latest) == 100 * 2 * len(NAMES)
    assert latest["external_run_id"].iloc[0] == f"a-{RUNS_A}"
    assert len(metrics_frame(generated, run=f"a-{RUNS_A}", name="rows")) == 2


def test_one_runs_points_use_the_series_key_then_the_point_key(generated):
    root = plan(
        generated, metrics_query(generated, run=f"a-{RUNS_A // 2}", name="rows"), analyze=True
    )
    series = reads_of(root, "metric_series")
    assert [n.get("Index Name") for n in series] == [UNIQUE_SERIES], describe(root)
    assert "execution_id =" in series[0]["Index Cond"], describe(root)
    assert_points_read_by_series_key(root)
    assert_final_attempt_reads_the_retried_steps_index(root)


def test_one_metric_over_a_window_reads_no_point_outside_its_series_or_window(generated):
    """A narrow window of one metric finds its points either from the metric's series (the
    series index, with component and name, then each series' points by key) or from the
    block ranges of the window (the BRIN index on ``recorded_at``), whichever the planner
    costs lower; never by reading every point. On this small store a sequential scan costs
    the planner less than either, so ``enable_seqscan = off`` asks which index it would use."""
    since = T0 + timedelta(hours=RUNS_A - 48)  # the last two days of job a
    query = aggregate_query(generated, job="a", name="rows", every="1d", since=since)
    root = plan(generated, query, analyze=True, seqscan=False)
    ran = [n for n in reads_of(root, POINTS, partitions=True) if n["Actual Loops"] > 0]
    assert ran, describe(root)
    for node in ran:
        index, condition = node.get("Index Name", ""), node.get("Index Cond", "")
        by_key = index == f"{node['Relation Name']}_pkey" and "series_id =" in condition
        by_window = index.endswith("recorded_at_idx") and "recorded_at >=" in condition
        # enable_seqscan = off makes the planner walk an empty partition's key instead
        read_nothing = node["Actual Rows"] == 0 and node.get("Rows Removed by Filter", 0) == 0
        assert by_key or by_window or read_nothing, describe(root)
    for node in reads_of(root, "metric_series"):
        assert node.get("Index Name") == SERIES_OVER_TIME, describe(root)
        condition = node.get("Index Cond") or node.get("Recheck Cond", "")
        assert "component_id" in condition and "name_id" in condition, describe(root)
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


def test_a_whole_frame_of_a_job_reads_its_components_series_by_the_component_index(generated):
    """A job's whole frame (read without ORDER BY, sorted afterwards) finds the series of the
    job's components through the component index, not by scanning every series."""
    shaped = metrics_shaped(generated, job="b", attempts="all", unordered=True)
    # 6,000 of 24,000 points: at this size a sequential scan costs the planner less (as above).
    root = plan(generated, shaped.statement(), seqscan=False)
    series = reads_of(root, "metric_series")
    assert [n.get("Index Name") for n in series] == [SERIES_OVER_TIME], describe(root)
    condition = series[0].get("Index Cond") or series[0].get("Recheck Cond", "")
    assert "component_id" in condition, describe(root)
