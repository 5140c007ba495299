"""Benchmark: the scale profile of the PostgreSQL store (issue 20), rerunnable at any size.

For a small and a large store (default 1e6 and 1e8 metric points: the generated store of
``analytics_queries.py``, each job with about 20 runs over 180 days, the large store with
more jobs; each kept between runs in a database named after its size,
``etl_meta_scale_<points>``), this reports:

``storage``
    Bytes per point: every relation that holds points or their keys (``metric_name``,
    ``metric_series``, ``metric_point`` with all its partitions, and all their indexes) over
    the points they hold; ``metric_latest`` beside it. Target ≤ 120.
``ingest``
    ``store.metrics.record`` of 10,000-point batches into a new run of the large store, as a
    ratio to the driver's binary ``COPY`` of the same rows into a minimal table (the same
    columns, no index or constraint) in the same database. Medians. Target ≥ 0.5. The runs
    are deleted again afterwards, so the kept store stays as generated.
``queries``
    The analyst queries (a)–(d) of ``analytics_queries.py`` through the store's API on both
    stores (medians), each reading the same rows on both; the large one's time over the small
    one's. Target ≤ 2.
``retention``
    Removing the oldest month's points, each way in a transaction that is rolled back (the kept
    store keeps them): seconds and WAL bytes. As the store's gc does it (the figures judged):
    detach and drop the partitions whose series all belong to runs of that month, if any
    (``etl_meta.repository.partitions.drop_expired``'s rule), then delete the month's other
    points, its series and ``metric_latest`` rows row by row. Beside it, ``row_wise``: all of
    them row by row, the way without partitions. Target < 1 s, < 1 MB.
``writers``
    8 writer processes, each posing as a separate orchestrator deployment, record runs (run,
    step attempts, metric points) into a scratch store through the store API; each also
    replays its neighbour's runs at the same time. Then: lost and duplicated runs, attempts and
    points (0 and 0), deadlocks (PostgreSQL's own counter, 0), and the total throughput of
    submitted points against one writer alone with the same work (target ≥ 1).

The figures never decide the exit code: this is a measurement. With ``--check`` (CI, through
``make scale-profile``) it exits 1 when the writers lost or duplicated a row, wrote an audit row
twice, failed a write or deadlocked: that is a bug, at any size.

    .venv/bin/python benchmarks/scale_profile.py --postgres-url postgresql://postgres@127.0.0.1/test
    .venv/bin/python benchmarks/scale_profile.py --small 20000 --large 200000 --repeats 1

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analytics_queries as aq  # the generated store and its queries

from etl_meta import MetadataStore, schema
from etl_meta.config import normalize_database_url
from etl_meta.db import create_engine
from tests import concurrent_writers as writers

POSTGRES_ENV = "ETL_META_BENCH_POSTGRES_URL"
SPAN = timedelta(days=180)
#: Each job's history is the same at every size (about 20 runs over SPAN): a larger store has
#: more jobs, as one serving more deployments does, so each query reads the same rows at every
#: size and only the store around them grows.
POINTS_PER_JOB = 20_000
#: The relations that hold metric points and their keys (partitioned ones count with their
#: partitions).
POINT_RELATIONS = ("metric_name", "metric_series", "metric_point")
DERIVED_RELATIONS = ("metric_latest",)
INGEST_BATCH = 10_000
INGEST_POINTS = 100_000
RAW_TABLE = "scale_raw_points"
# The oldest month's runs are ``execution.started_at < %(cutoff)s``.
#: Row-wise retention of the oldest month: its runs' points (by series: a point has no key to
#: its run), their series, their latest values. What gc does for what no partition drop took.
DELETE_OLD_POINTS = (
    "DELETE FROM metric_point WHERE series_id IN (SELECT id FROM metric_series "
    "WHERE execution_id IN (SELECT id FROM execution WHERE started_at < %(cutoff)s))"
)
DELETE_OLD_SERIES = (
    "DELETE FROM metric_series "
    "WHERE execution_id IN (SELECT id FROM execution WHERE started_at < %(cutoff)s)"
)
DELETE_OLD_LATEST = (
    "DELETE FROM metric_latest "
    "WHERE execution_id IN (SELECT id FROM execution WHERE started_at < %(cutoff)s)"
)
#: The partitions gc drops for that month (partitions.drop_expired's rule): every range below
#: the highest series (no new series can take one of its ids) holding no series of another run.
EXPIRED_PARTITIONS = """
SELECT p.name FROM metric_partition AS p
WHERE p.high <= (SELECT coalesce(max(id), 0) FROM metric_series)
  AND NOT EXISTS (
      SELECT 1 FROM metric_series AS s
      WHERE s.id >= p.low AND s.id < p.high
        AND s.execution_id NOT IN (SELECT id FROM execution WHERE started_at < %(cutoff)s)
  )
ORDER BY p.low
"""
TARGETS = {
    "bytes_per_point": 120,
    "ingest_ratio": 0.5,
    "query_growth": 2.0,
    "retention_seconds": 1.0,
    "retention_wal_bytes": 1_000_000,
    "writers_throughput_ratio": 1.0,
}
WRITERS = 8


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- storage, queries, retention on the kept stores -------------------------------------------


def relation_bytes(raw: psycopg.Connection[Any], names: Sequence[str]) -> dict[str, int]:
    """Each relation's size with its indexes (a partitioned one: all its partitions')."""
    statement = (
        "SELECT CASE WHEN c.relkind = 'p' THEN ("
        "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(c.oid)"
        ") ELSE pg_total_relation_size(c.oid) END FROM pg_class AS c WHERE c.oid = %s::regclass"
    )
    return {name: int(raw.execute(statement, (name,)).fetchone()[0]) for name in names}


def storage(backend: aq.PostgresBackend, points: int) -> dict[str, Any]:
    sizes = relation_bytes(backend.raw, POINT_RELATIONS)
    derived = relation_bytes(backend.raw, DERIVED_RELATIONS)
    total = sum(sizes.values())
    return {
        "points": points,
        "bytes": sizes,
        "bytes_per_point": round(total / points, 1),
        "derived_bytes_per_point": {k: round(v / points, 1) for k, v in derived.items()},
    }


def queries(
    backend: aq.PostgresBackend, plan: aq.Plan, repeats: int, frame_rows: int
) -> dict[str, float]:
    """The store's median seconds per query (a)–(d), hand-written variants checked alongside."""
    medians = {}
    for query in aq.build_queries(backend, plan, frame_rows):
        aq.run_query(query, repeats)
        store = next(v for v in query.variants if v.key == "store")
        medians[query.key] = store.median
        log(f"    ({query.key}) {query.rows:,} rows: store {store.median * 1000:.1f} ms")
    return medians


def retention(backend: aq.PostgresBackend) -> dict[str, Any]:
    """Removing the oldest month: as gc does it (partitions, then rows), and all row-wise."""
    cutoff = aq.T_END - SPAN + timedelta(days=30)
    raw = backend.raw
    by_partitions = _rolled_back(raw, lambda: _drop_then_delete(raw, cutoff))
    row_wise = _rolled_back(raw, lambda: _delete_rows(raw, cutoff))
    return {
        "how": "partitions of the month's runs detached and dropped, then the rest row by row "
        "(as gc; rolled back)",
        **by_partitions,
        "row_wise": {
            "how": "row-wise DELETE of the month's runs' points, series and latest values "
            "(rolled back)",
            **row_wise,
        },
    }


def _rolled_back(raw: psycopg.Connection[Any], work: Any) -> dict[str, Any]:
    """``work()``'s figures with its seconds and WAL bytes, in a transaction rolled back.

    A checkpoint first (superusers only; otherwise skipped), so each way writes the full-page
    images of the pages it changes first, not only the way measured first."""
    with contextlib.suppress(psycopg.Error):
        raw.execute("CHECKPOINT")
    with raw.transaction() as tx:
        (start,) = raw.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        began = time.perf_counter()
        figures = work()
        seconds = time.perf_counter() - began
        (wal,) = raw.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (start,)
        ).fetchone()
        tx.force_rollback = True
    return {**figures, "seconds": round(seconds, 3), "wal_bytes": int(wal)}


def _delete_rows(raw: psycopg.Connection[Any], cutoff: datetime) -> dict[str, Any]:
    values = {"cutoff": cutoff}
    points = raw.execute(DELETE_OLD_POINTS, values).rowcount
    series = raw.execute(DELETE_OLD_SERIES, values).rowcount
    raw.execute(DELETE_OLD_LATEST, values)
    return {"points": points, "series": series}


def _drop_then_delete(raw: psycopg.Connection[Any], cutoff: datetime) -> dict[str, Any]:
    names = [name for (name,) in raw.execute(EXPIRED_PARTITIONS, {"cutoff": cutoff})]
    dropped = 0
    for name in names:
        table = sql.Identifier(name)
        (count,) = raw.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        raw.execute(sql.SQL("ALTER TABLE metric_point DETACH PARTITION {}").format(table))
        raw.execute(sql.SQL("DROP TABLE {}").format(table))
        raw.execute("DELETE FROM metric_partition WHERE name = %s", (name,))
        dropped += count
    rest = _delete_rows(raw, cutoff)
    return {
        "partitions_dropped": names,
        "points": dropped + rest["points"],
        "points_in_dropped_partitions": dropped,
        "points_deleted_row_wise": rest["points"],
        "series": rest["series"],
    }


# --- ingest: the store against raw COPY into a minimal table ----------------------------------


def ingest(backend: aq.PostgresBackend, plan: aq.Plan, repeats: int) -> dict[str, Any]:
    store, raw = backend.store, backend.raw
    assert store is not None
    job = plan.jobs[0]
    components = {c.name: c.id for c in store.components.list(job)}
    raw.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (execution_id int8, component_id int4, attempt int4, "
            "name text, step int8, value float8, recorded_at timestamptz)"
        ).format(sql.Identifier(RAW_TABLE))
    )
    start = datetime(2026, 11, 2, tzinfo=UTC)
    rng = random.Random(7)
    points = [
        (component, name, rng.random() * 1000.0, step, 1, start + timedelta(seconds=step))
        for step in range(INGEST_POINTS // (len(aq.COMPONENTS) * len(aq.METRIC_NAMES)))
        for component in aq.COMPONENTS
        for name in aq.METRIC_NAMES
    ]
    batches = [points[i : i + INGEST_BATCH] for i in range(0, len(points), INGEST_BATCH)]
    created: list[int] = []
    store_seconds: list[float] = []
    raw_seconds: list[float] = []
    try:
        for repeat in range(repeats):
            run = store.executions.upsert(
                {
                    "job": job,
                    "orchestrator": "manual",
                    "external_run_id": f"scale-ingest-{uuid.uuid4()}",
                    "status": "running",
                    "started_at": start,
                }
            )
            created.append(run.id)
            rows = [(run.id, components[c], a, n, s, v, t) for c, n, v, s, a, t in points]
            order = ("store", "raw") if repeat % 2 == 0 else ("raw", "store")
            for which in order:
                if which == "store":
                    began = time.perf_counter()
                    for batch in batches:
                        store.metrics.record(batch, execution_id=run.id)
                    store_seconds.append(time.perf_counter() - began)
                else:
                    raw.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(RAW_TABLE)))
                    began = time.perf_counter()
                    copy_rows(raw, rows)
                    raw_seconds.append(time.perf_counter() - began)
    finally:
        remove_runs(raw, created)
        raw.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(RAW_TABLE)))
    store_rate = len(points) / statistics.median(store_seconds)
    raw_rate = len(points) / statistics.median(raw_seconds)
    return {
        "points_per_repeat": len(points),
        "batch": INGEST_BATCH,
        "store_points_per_s": round(store_rate),
        "raw_copy_points_per_s": round(raw_rate),
        "ratio": round(store_rate / raw_rate, 3),
    }


def copy_rows(raw: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    statement = sql.SQL(
        "COPY {} (execution_id, component_id, attempt, name, step, value, recorded_at) "
        "FROM STDIN (FORMAT BINARY)"
    ).format(sql.Identifier(RAW_TABLE))
    with raw.transaction(), raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["int8", "int4", "int4", "text", "int8", "float8", "timestamptz"])
        for row in rows:
            copy.write_row(row)


def remove_runs(raw: psycopg.Connection[Any], ids: list[int]) -> None:
    """Delete runs this benchmark added to a kept store: their points first (a point has no
    foreign key to its series), then the runs (cascading to series, attempts, latest values)."""
    if ids:
        raw.execute(
            "DELETE FROM metric_point WHERE series_id IN "
            "(SELECT id FROM metric_series WHERE execution_id = ANY(%s))",
            (ids,),
        )
        raw.execute("DELETE FROM execution WHERE id = ANY(%s)", (ids,))
        raw.execute("VACUUM (ANALYZE) metric_point, metric_series")


# --- concurrent writers (the workload is tests/concurrent_writers.py's) -----------------------


def run_writers(server: str, home: Path, work: writers.Workload) -> dict[str, Any]:
    """``work`` on a scratch store; what landed, PostgreSQL's deadlock count, and throughput."""
    database = f"etl_meta_scale_writers_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        name = sql.Identifier(database)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    url = make_url(server).set(database=database).render_as_string(hide_password=False)
    try:
        engine = create_engine(url, settings=writers.settings(home))
        schema.upgrade(engine)
        writers.create_job(MetadataStore(engine=engine, settings=writers.settings(home)))
        engine.dispose()
        with psycopg.connect(server, autocommit=True) as admin:
            statement = "SELECT deadlocks FROM pg_stat_database WHERE datname = %s"
            before = admin.execute(statement, (database,)).fetchone()[0]
            done = writers.run(url, home, work)
            time.sleep(0.6)  # the statistics collector reports at most every 500 ms
            deadlocks = admin.execute(statement, (database,)).fetchone()[0] - before
        found = writers.stored(url, home)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
    return {
        "writers": work.writers,
        "runs_per_writer": work.runs * 2,
        "points_per_run": work.expected["points"] // work.expected["runs"],
        "wall_seconds": round(done["wall_seconds"], 2),
        "submitted_points_per_s": round(done["submitted"] / done["wall_seconds"]),
        "expected": work.expected,
        "stored": found,
        "problems": writers.problems(work, found, done["errors"]),
        "deadlocks": deadlocks,
    }


# --- the profile ------------------------------------------------------------------------------


def profile_store(
    server: str, home: Path, points: int, repeats: int, *, frame_rows: int, large: bool
) -> dict[str, Any]:
    plan = aq.make_plan(points, span=SPAN, jobs=max(aq.JOBS, points // POINTS_PER_JOB))
    backend = aq.PostgresBackend(home, server, keep=f"etl_meta_scale_{points}")
    try:
        generation = backend.prepare(plan, fresh=False)
        what = "kept from an earlier run" if generation.cached else "generated"
        log(f"  {points:,} points: {what} ({generation.seconds:.0f}s)")
        backend.open()
        result: dict[str, Any] = {
            "points": plan.total_points,
            "runs": len(plan.runs),
            "jobs": len(plan.jobs),
        }
        result["storage"] = storage(backend, plan.total_points)
        result["queries"] = queries(backend, plan, repeats, frame_rows)
        if large:
            result["retention"] = retention(backend)
            result["ingest"] = ingest(backend, plan, repeats)
        return result
    finally:
        backend.close()


def query_growth(document: dict[str, Any]) -> dict[str, float]:
    """Each query's median on the large store over its median on the small one."""
    small, large = document["small"]["queries"], document["large"]["queries"]
    return {k: round(large[k] / small[k], 2) for k in large}


def verdicts(document: dict[str, Any]) -> dict[str, bool]:
    large, together = document["large"], document["writers"]
    return {
        "bytes_per_point": large["storage"]["bytes_per_point"] <= TARGETS["bytes_per_point"],
        "ingest_ratio": large["ingest"]["ratio"] >= TARGETS["ingest_ratio"],
        "query_growth": all(
            v <= TARGETS["query_growth"] for v in document["query_growth"].values()
        ),
        "retention_seconds": large["retention"]["seconds"] < TARGETS["retention_seconds"],
        "retention_wal_bytes": large["retention"]["wal_bytes"] < TARGETS["retention_wal_bytes"],
        "writers_exactly_once": not together["problems"],
        "writers_no_deadlock": together["deadlocks"] == 0,
        "writers_throughput_ratio": together["throughput_ratio"]
        >= TARGETS["writers_throughput_ratio"],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000_000, help="points of the small store")
    parser.add_argument("--large", type=int, default=100_000_000, help="points of the large one")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement")
    parser.add_argument("--writer-runs", type=int, default=40, help="own runs per writer")
    parser.add_argument("--writer-steps", type=int, default=20, help="steps per metric series")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or None,
        help=f"PostgreSQL server URL (or ${POSTGRES_ENV})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the writers lost, duplicated or deadlocked (never for a figure)",
    )
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error(f"give --postgres-url or ${POSTGRES_ENV}")
    if args.small < 10_000 or args.large < args.small or args.repeats < 1:
        parser.error("--small must be at least 10000, --large at least --small, --repeats >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = make_url(normalize_database_url(args.postgres_url))
    conninfo = server.set(drivername="postgresql").render_as_string(hide_password=False)
    began = time.perf_counter()
    document: dict[str, Any] = {"targets": TARGETS, "repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="etl_meta_scale_") as tmp:
        home = Path(tmp)
        for key, points in (("small", args.small), ("large", args.large)):
            log(f"{key} store")
            document[key] = profile_store(
                args.postgres_url,
                home,
                points,
                args.repeats,
                # (d) reads whole jobs adding up to this many points, at both sizes
                frame_rows=min(1_000_000, args.small // 2),
                large=key == "large",
            )
        log("writers")
        alone = run_writers(
            conninfo, home, writers.Workload(1, args.writer_runs, args.writer_steps)
        )
        work = writers.Workload(WRITERS, args.writer_runs, args.writer_steps)
        together = run_writers(conninfo, home, work)
        together["one_writer_points_per_s"] = alone["submitted_points_per_s"]
        together["throughput_ratio"] = round(
            together["submitted_points_per_s"] / alone["submitted_points_per_s"], 2
        )
        document["writers"] = together
    document["query_growth"] = query_growth(document)
    document["met"] = verdicts(document)
    document["elapsed_seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(document, indent=2, default=str))
    met = document["met"]
    correct = met["writers_exactly_once"] and met["writers_no_deadlock"]
    return 1 if args.check and not correct else 0


if __name__ == "__main__":
    sys.exit(main())
