"""Benchmark: a catalog snapshot served from the per-process cache against one read in full.

Dagster code locations, the Airflow DAG export and the reload checks take a snapshot of every
live job and dataclass; most of the time nothing changed since the last one. For SQLite (a temp
file) and, when a server URL is given, PostgreSQL (a scratch database, dropped at the end), this
seeds ``--jobs`` jobs of ``--components`` components and ``--dataclasses`` dataclasses, then
times, alternating the order from one repeat to the next:

* **full**: ``take_snapshot(store, cached=False)``, every definition read and masked — the
  baseline;
* **cached**: ``take_snapshot(store)`` with nothing changed: the fingerprint (two small
  queries) and a copy of the cached snapshot.

Reported per backend: the median over ``--repeats`` of each variant, and ``cached ÷ full``.
Exit code 0 whatever the figures (a measurement, not a test).

    .venv/bin/python benchmarks/catalog_snapshot.py --postgres-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, schema
from etl_meta.catalog import take_snapshot
from etl_meta.config import Settings, normalize_database_url
from etl_meta.db import create_engine

POSTGRES_ENV = "ETL_META_BENCH_POSTGRES_URL"


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A scratch database next to ``server_url``, dropped at the end (also on errors)."""
    server = make_url(normalize_database_url(server_url)).set(drivername="postgresql")
    name = f"etl_meta_bench_{os.getpid()}_catalog"
    admin_url = server.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def seed(store: MetadataStore, *, jobs: int, components: int, dataclasses: int) -> None:
    """``jobs`` chains of ``components`` read_csv steps, and ``dataclasses`` dataclasses."""
    for d in range(dataclasses):
        store.dataclasses.create(
            {"name": f"data_{d}", "schema_definition": {"columns": {"id": "int64"}}}
        )
    for j in range(jobs):
        steps = [
            {
                "name": f"step_{c}",
                "component_type": "read_csv",
                "configuration": {"path": f"in_{c}.csv", "dtype": {"id": "int64"}},
                "depends_on": [f"step_{c - 1}"] if c else [],
            }
            for c in range(components)
        ]
        store.jobs.create({"name": f"job_{j}", "tags": {"team": "bench"}, "components": steps})


def measure(store: MetadataStore, repeats: int) -> dict[str, float]:
    variants: dict[str, Callable[[], object]] = {
        "full": lambda: take_snapshot(store, cached=False),
        "cached": lambda: take_snapshot(store),
    }
    take_snapshot(store)  # fill the cache (and warm the pool)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            started = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def run(url: str, backend: str, args: argparse.Namespace, home: Path) -> str:
    settings = Settings(_env_file=None, home=home, database_url=None, actor="bench")
    engine = create_engine(url, settings=settings)
    schema.upgrade(engine)
    try:
        with MetadataStore(engine=engine, settings=settings) as store:
            seed(store, jobs=args.jobs, components=args.components, dataclasses=args.dataclasses)
            medians = measure(store, args.repeats)
    finally:
        engine.dispose()
    full, cached = medians["full"] * 1000, medians["cached"] * 1000
    return (
        f"{backend:<10} full {full:8.2f} ms   cached {cached:7.2f} ms   "
        f"cached ÷ full {cached / full:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_ENV))
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--components", type=int, default=8)
    parser.add_argument("--dataclasses", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print(
        f"{args.jobs} jobs × {args.components} components, {args.dataclasses} dataclasses; "
        f"medians of {args.repeats} repeats"
    )
    with tempfile.TemporaryDirectory() as workdir:
        home = Path(workdir)
        print(run(f"sqlite:///{home / 'bench.db'}", "sqlite", args, home), flush=True)
        if args.postgres_url:
            with postgres_database(args.postgres_url) as url:
                print(run(url, "postgresql", args, home), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
