"""Benchmark: one metric call through the store against a raw one-row transaction.

An op records a handful of metrics at a time, so what matters on its hot path is the fixed cost
of one small call, not bulk speed (that is ``metric_ingest.py``). For SQLite (a temp file) and,
when a server URL is given, PostgreSQL (a scratch database, dropped at the end), this times in
one process, alternating the variants' order from one repeat to the next:

* **raw**: the driver alone (``sqlite3`` with the store's pragmas / psycopg 3) doing
  ``BEGIN; INSERT`` one ``metric_point`` row ``; COMMIT`` — the baseline. Its series (run,
  component, name, attempt) is made once beforehand, as a hand-written loader that knows its
  ids would; on SQLite the point's ``id`` is the highest stored plus one, as SQLite stores
  number points;
* **store**: ``store.metrics.record_to(target, [point])``, the recorder's path once it knows
  its run's and component's ids (validation, one transaction, ``metric_latest`` kept current);
* **recorder**: ``MetricRecorder.record({name: value})`` as an op calls it (the point checks,
  the bounded-wait retry wrapper and the hand-off list on top of ``store``);
* **record()**: the public ``store.metrics.record([point], orchestrator=…, run_id=…)``, which
  looks the run and the job's components up on every call, for reference.

Every call writes a new point (the step counts up). Reported per backend: the median over
``--repeats`` runs of each variant's median call time, and ``÷ raw``. Target (issue 16): store
≤ 1.5 × raw. Exit code 0 whatever the figures (a measurement, not a test).

    .venv/bin/python benchmarks/metric_call.py --postgres-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, schema
from etl_meta.catalog import JobSnapshot
from etl_meta.config import Settings, normalize_database_url
from etl_meta.db import create_engine
from etl_meta.models import StrategyType
from etl_meta.runtime import MetricRecorder, RunIdentity

POSTGRES_ENV = "ETL_META_BENCH_POSTGRES_URL"
RUN_ID = "bench-run"
_RAW_SQLITE = (
    "INSERT INTO metric_point (series_id, step, value, recorded_at, id) "
    "VALUES (?, ?, ?, ?, (SELECT coalesce(max(id), 0) + 1 FROM metric_point))"
)
_RAW_POSTGRES = (
    "INSERT INTO metric_point (series_id, step, value, recorded_at) VALUES (%s, %s, %s, %s)"
)
#: The raw variant's series, made once before the clock starts.
_RAW_SERIES_SQLITE = (
    "INSERT INTO metric_name (name) VALUES ('r') ON CONFLICT DO NOTHING",
    "INSERT INTO metric_series (execution_id, component_id, name_id, attempt) "
    "SELECT ?, ?, id, 1 FROM metric_name WHERE name = 'r' RETURNING id",
)
_RAW_SERIES_POSTGRES = tuple(statement.replace("?", "%s") for statement in _RAW_SERIES_SQLITE)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    """A migrated SQLite file; yields its URL and a factory of raw connections like the store's."""
    path = workdir / "metric_call.db"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None)  # we issue BEGIN ourselves
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        return connection

    yield f"sqlite:///{path}", connect


@contextmanager
def postgres_database(server_url: str) -> Iterator[tuple[str, Callable[[], Any]]]:
    """A scratch database next to ``server_url``, dropped at the end (also on errors)."""
    server = make_url(normalize_database_url(server_url)).set(drivername="postgresql")
    name = f"etl_meta_bench_{os.getpid()}_call"
    admin_url = server.render_as_string(hide_password=False)
    url = server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url, lambda: psycopg.connect(url)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def seed(url: str, settings: Settings) -> MetadataStore:
    """Migrate, create a one-component job and a running execution; the open store."""
    engine = create_engine(url, settings=settings)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    store = MetadataStore(url, settings=settings, actor="bench@etl-meta")
    store.jobs.create({"name": "bench", "num_of_retries": 0})
    # Nothing runs the job: any configuration its component type accepts will do.
    component = {"name": "load", "component_type": "read_csv", "configuration": {"path": "in.csv"}}
    store.components.create("bench", component)
    store.executions.upsert(
        {"job": "bench", "orchestrator": "dagster", "external_run_id": RUN_ID, "status": "running"}
    )
    return store


def variants(store: MetadataStore, connect: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """One callable per variant; each call writes one new point."""
    target = store.metrics.target("load", orchestrator="dagster", run_id=RUN_ID)
    assert target is not None
    steps = iter(range(10**9))
    raw = connect()
    is_sqlite = isinstance(raw, sqlite3.Connection)
    name, series = _RAW_SERIES_SQLITE if is_sqlite else _RAW_SERIES_POSTGRES
    raw.execute(name)
    (series_id,) = raw.execute(series, (target.execution_id, target.component_id)).fetchone()
    if not is_sqlite:
        raw.commit()

    def raw_call() -> None:
        step, now = next(steps), datetime.now(UTC)
        if is_sqlite:
            at = now.strftime("%Y-%m-%d %H:%M:%S.%f")
            raw.execute("BEGIN")
            raw.execute(_RAW_SQLITE, (series_id, step, 1.0, at))
            raw.execute("COMMIT")
        else:  # psycopg opens the transaction (BEGIN) itself on the first statement
            raw.execute(_RAW_POSTGRES, (series_id, step, 1.0, now))
            raw.commit()

    def store_call() -> None:
        result = store.metrics.record_to(
            target, [("load", "s", 1.0, next(steps), 1, datetime.now(UTC))]
        )
        assert result.inserted == 1

    def public_call() -> None:
        point = ("load", "p", 1.0, next(steps), 1, datetime.now(UTC))
        store.metrics.record([point], orchestrator="dagster", run_id=RUN_ID)

    job = JobSnapshot(
        name="bench",
        revision=0,
        num_of_retries=0,
        file_logging=False,
        strategy_type=StrategyType.SEQUENTIAL,
    )
    recorder = MetricRecorder(store, job, "load", RunIdentity("dagster", RUN_ID), wait_seconds=5)

    def recorder_call() -> None:
        recorder.record({"m": 1.0})
        recorder.points.clear()  # keep the hand-off list from growing over thousands of calls
        recorder._written = 0

    return {
        "raw": raw_call,
        "store": store_call,
        "recorder": recorder_call,
        "record()": public_call,
    }


def measure(
    calls: dict[str, Callable[[], Any]], repeats: int, per_run: int
) -> dict[str, list[float]]:
    """Per variant, the median seconds per call of each of ``repeats`` runs of ``per_run`` calls."""
    for call in calls.values():  # warm-up: connections, compiled statements, prepared plans
        for _ in range(20):
            call()
    medians: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            gc.collect()
            times = []
            for _ in range(per_run):
                start = time.perf_counter()
                calls[name]()
                times.append(time.perf_counter() - start)
            medians[name].append(statistics.median(times))
    return medians


def report(backend: str, medians: dict[str, list[float]]) -> str:
    raw = statistics.median(medians["raw"])
    lines = [backend]
    for name, values in medians.items():
        value = statistics.median(values)
        verdict = ""
        if name == "store":
            verdict = "  (target ≤ 1.50)" + ("  ABOVE TARGET" if value / raw > 1.5 else "")
        lines.append(
            f"  {name:<9} {value * 1e6:8.1f} µs/call  ÷ raw {value / raw:5.2f}"
            f"  range {min(values) * 1e6:.1f}–{max(values) * 1e6:.1f}{verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each variant")
    parser.add_argument("--calls", type=int, default=300, help="calls per run")
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_ENV) or None)
    parser.add_argument("--backend", choices=("all", "sqlite", "postgresql"), default="all")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    out = []
    with tempfile.TemporaryDirectory(prefix="etl_meta_bench_") as tmp:
        os.environ["ETL_META_HOME"] = str(Path(tmp) / "home")
        settings = Settings().for_runs()
        databases: list[tuple[str, Any]] = []
        if args.backend in ("all", "sqlite"):
            databases.append(("sqlite", sqlite_database(Path(tmp))))
        if args.backend in ("all", "postgresql") and args.postgres_url:
            databases.append(("postgresql", postgres_database(args.postgres_url)))
        for backend, database in databases:
            with database as (url, connect):
                store = seed(url, settings)
                try:
                    log(f"{backend}: {args.repeats} × {args.calls} calls per variant")
                    out.append(
                        report(backend, measure(variants(store, connect), args.repeats, args.calls))
                    )
                finally:
                    store.close()
    print(
        f"one metric call, median of {args.repeats} runs of {args.calls} calls "
        f"(load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
