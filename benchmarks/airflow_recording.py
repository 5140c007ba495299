"""Airflow recording under a store outage: what a DAG-run hook costs the scheduler, and how long
``etl-meta airflow reconcile`` takes for N runs (first pass, then a pass with nothing new).

    .venv/bin/python benchmarks/airflow_recording.py [--runs 1000] [--repeat 5]
    ETL_META_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/airflow_recording.py          # the store on PostgreSQL too

Everything lives in a temporary directory: an Airflow home and SQLite metadata database, one
etl-meta job run once under ``dag.test()`` and copied to N runs in Airflow's database, a real
``airflow api-server``, and a fresh store per pass. Figures are medians; reconcile times are also
given as a ratio to reading the same runs and task instances through the API alone (the floor).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(tempfile.mkdtemp(prefix="etl_meta_bench_airflow_"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(ROOT / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{ROOT / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(ROOT / "logs"),
        "ETL_META_HOME": str(ROOT / "etl_meta"),
    }
)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from etl_meta import MetadataStore, schema  # noqa: E402
from etl_meta.db import create_engine  # noqa: E402
from tests.airflow import api_server  # noqa: E402
from tests.backends import TEST_SECRET_KEY  # noqa: E402

os.environ.setdefault("ETL_META_SECRET_KEYS", TEST_SECRET_KEY)


def fresh_store_url(backend: str, index: int) -> str:
    if backend == "sqlite":
        path = ROOT / f"store_{index}.db"
        return f"sqlite:///{path}"
    admin = os.environ["ETL_META_BENCH_POSTGRES_URL"].replace(
        "postgresql://", "postgresql+psycopg://"
    )
    name = f"etl_meta_bench_{os.getpid()}_{index}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_store(url: str) -> None:
    if url.startswith("sqlite"):
        return
    admin = os.environ["ETL_META_BENCH_POSTGRES_URL"].replace(
        "postgresql://", "postgresql+psycopg://"
    )
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    engine.dispose()


def migrated_store(url: str) -> MetadataStore:
    engine = create_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    store = MetadataStore(url)
    store.jobs.create(
        {
            "name": "bench",
            "num_of_retries": 0,
            "components": [
                {"name": name, "component_type": "test.airflow_add", "configuration": {"n": 1}}
                for name in ("a", "b", "c")
            ],
        }
    )
    return store


def hook_cost(store_url: str, repeat: int) -> dict[str, float]:
    """Median seconds of one ``on_dag_run_success`` call: store up, store refusing."""
    from types import SimpleNamespace

    from etl_meta.airflow import background, listener

    def call(run_id: str) -> float:
        dag_run = SimpleNamespace(
            dag_id="bench",
            run_id=run_id,
            dag=SimpleNamespace(tags={"etl-meta"}),
            conf={},
            start_date=None,
            end_date=None,
            get_task_instances=lambda: [],
        )
        started = time.perf_counter()
        listener.on_dag_run_success(dag_run=dag_run, msg="success")
        return time.perf_counter() - started

    figures = {}
    for label, url in (("store up", store_url), ("store refusing", "postgresql://x@127.0.0.1:1/x")):
        os.environ["ETL_META_DATABASE_URL"] = url
        background.reset()
        figures[label] = statistics.median(call(f"hook_{label}_{i}") for i in range(repeat * 20))
        background.reset()
    os.environ["ETL_META_DATABASE_URL"] = store_url
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from etl_meta.airflow.export import export_dags
    from etl_meta.airflow.reconcile import reconcile
    from etl_meta.airflow.rest import AirflowClient
    from tests.airflow.support import copy_runs, exported_dags, reset_airflow_db

    reset_airflow_db()

    backends = ["sqlite"] + (
        ["postgresql"] if os.environ.get("ETL_META_BENCH_POSTGRES_URL") else []
    )
    seed_url = fresh_store_url("sqlite", 0)
    seed = migrated_store(seed_url)
    os.environ["ETL_META_DATABASE_URL"] = seed_url
    export_dags(seed, ROOT / "dags", retry_delay_seconds=0, reconcile_minutes=0)
    template = exported_dags(seed)["bench"].test()
    copy_runs(template.run_id, args.runs - 1)
    server = api_server.start(ROOT)
    try:
        print(f"DAG-run hook cost (median of {args.repeat * 20} calls):")
        for label, seconds in hook_cost(seed_url, args.repeat).items():
            print(f"  {label:16s} {seconds * 1e6:8.1f} us")
        with AirflowClient(server.url, username="admin", password="admin") as client:
            floors = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                runs = list(client.dag_runs())
                client.task_instances([(r["dag_id"], r["dag_run_id"]) for r in runs])
                floors.append(time.perf_counter() - started)
            floor = statistics.median(floors)
            print(
                f"reading {len(runs)} runs and their task instances through the API: {floor:.2f} s"
            )
            for backend in backends:
                first, idle = [], []
                for index in range(args.repeat):
                    url = fresh_store_url(backend, index + 1)
                    store = migrated_store(url)
                    try:
                        started = time.perf_counter()
                        result = reconcile(store, client)
                        first.append(time.perf_counter() - started)
                        assert result.runs_written == args.runs, result
                        started = time.perf_counter()
                        again = reconcile(store, client)
                        idle.append(time.perf_counter() - started)
                        assert again.runs_written == 0, again
                    finally:
                        store.close()
                        drop_store(url)
                f, i = statistics.median(first), statistics.median(idle)
                print(
                    f"{backend:10s} reconcile {args.runs} runs: first pass {f:.2f} s "
                    f"({f / floor:.1f}x the API read), nothing new {i:.3f} s"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
