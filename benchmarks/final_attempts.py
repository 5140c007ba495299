"""Benchmark: reads of final attempts (the analytics default) against reads of all attempts.

``attempts="final"`` keeps each step's points from the last attempt that recorded any; the issue's
target is that it never costs more than 1.5 x the same read with ``attempts="all"``. On a generated
store (default 2,500 runs of 10 jobs, 4 components each, 5 % of steps retried once, 20 metric
names x 5 steps per attempt: about 1,050,000 points) this times, for SQLite and, when a server
URL is given, PostgreSQL (a scratch database, dropped at the end):

* ``count``: the CLI's count of every point (``etl-meta metrics query`` counts before it pages);
* ``page``: one 100,000-point ``metrics_page``;
* ``count job``: the count of one job's points (about 100,000).

Medians of ``--repeats`` runs after a warm-up; the exit code is 0 whatever the figures.

    .venv/bin/python benchmarks/final_attempts.py --postgres-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa
from cryptography.fernet import Fernet

from etl_meta import MetadataStore, schema
from etl_meta.analytics import metric_count, metrics_page
from etl_meta.config import Settings
from etl_meta.db import create_engine

JOBS, COMPONENTS, NAMES, STEPS, RETRIED = 10, 4, 20, 5, 0.05
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def generate(store: MetadataStore, runs: int) -> int:
    """``runs`` runs with their attempts and points; returns the number of points."""
    rnd = random.Random(1)
    components = [
        {"name": f"c{i}", "component_type": "read_csv", "configuration": {"path": "in.csv"}}
        for i in range(COMPONENTS)
    ]
    for j in range(JOBS):
        store.jobs.create({"name": f"job{j}", "components": components})
    total = 0
    for r in range(runs):
        started = T0 + timedelta(minutes=r)
        steps = []
        for c in range(COMPONENTS):
            tries = 2 if rnd.random() < RETRIED else 1
            steps += [
                {
                    "component": f"c{c}",
                    "attempt": a,
                    "status": "success" if a == tries else "failed",
                }
                for a in range(1, tries + 1)
            ]
        run = store.executions.upsert(
            {
                "job": f"job{r % JOBS}",
                "orchestrator": "dagster",
                "external_run_id": f"run-{r}",
                "status": "success",
                "started_at": started,
            },
            steps=steps,
        )
        points = [
            (s["component"], f"m{n}", float(k), k, s["attempt"], started)
            for s in steps
            for n in range(NAMES)
            for k in range(STEPS)
        ]
        store.metrics.record(points, execution_id=run.id)
        total += len(points)
    return total


@contextmanager
def scratch_store(backend: str, postgres_url: str | None, home: Path) -> Iterator[MetadataStore]:
    settings = Settings(home=home, secret_keys=Fernet.generate_key().decode())  # a throwaway key
    if backend == "sqlite":
        url, admin = f"sqlite:///{home / 'bench.db'}", None
    else:
        assert postgres_url is not None
        name = f"etl_meta_bench_final_{uuid.uuid4().hex[:8]}"
        admin = sa.make_url(postgres_url).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(False), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url, settings=settings)
    try:
        schema.upgrade(engine, settings=settings)
        with MetadataStore(engine=engine, settings=settings) as store:
            yield store
    finally:
        engine.dispose()
        if admin is not None:
            with psycopg.connect(admin.render_as_string(False), autocommit=True) as connection:
                connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(store: MetadataStore, backend: str, repeats: int) -> None:
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    reads: dict[str, Callable[[str], object]] = {
        "count": lambda attempts: metric_count(store, attempts=attempts),
        "page": lambda attempts: metrics_page(store, limit=100_000, attempts=attempts),
        "count job": lambda attempts: metric_count(store, attempts=attempts, job="job3"),
    }
    for read, call in reads.items():
        every = median_seconds(lambda c=call: c("all"), repeats)
        final = median_seconds(lambda c=call: c("final"), repeats)
        print(
            f"{backend:10} {read:10} all {every * 1000:8.1f} ms   final {final * 1000:8.1f} ms"
            f"   final / all {final / every:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server to make a scratch database on")
    parser.add_argument("--runs", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    for backend in backends:
        with (
            tempfile.TemporaryDirectory() as home,
            scratch_store(backend, args.postgres_url, Path(home)) as store,
        ):
            points = generate(store, args.runs)
            print(f"{backend}: {points:,} points")
            measure(store, backend, args.repeats)


if __name__ == "__main__":
    main()
