"""Benchmark: ``etl-meta metrics query`` exports and large frames against the database's own tools.

On a generated store (``final_attempts.generate``: default 2,500 runs, about 1,050,000 points)
this times, for SQLite and, when a server URL is given, PostgreSQL (a scratch database dropped
at the end), each as a separate process, the way users run them:

* **baseline**: the database's own CSV export of the statement the export runs (the same joined
  columns, ``ORDER BY`` id) — ``sqlite3 -csv -header`` and ``psql -c "\\copy (…) TO … CSV
  HEADER"``;
* **csv / json / parquet**: ``etl-meta metrics query --attempts all -f FORMAT -o FILE``, the
  whole command with Python's start-up;
* **csv final**: the same CSV export with the default ``--attempts final``;
* **start-up**: ``etl-meta jobs list``, a command's fixed cost (Python, imports, opening the
  store), so each export's time less it can be read against the baseline too;
* **frame** and **read_sql**: ``metrics_frame(store, attempts="all")`` and ``pandas.read_sql``
  of the same statement on a raw DBAPI connection: seconds, rows per second, and the peak
  resident memory each adds to the process (``ru_maxrss`` after minus before, imports done).

Targets (issue 19): each export ≤ 1.5 × the baseline; final ≤ 1.5 × all; frame memory
≤ 0.3 × ``read_sql``'s; ≥ 1M rows/s on PostgreSQL. Medians of ``--repeats`` runs, the
variants taking turns round by round; the exit code is 0 whatever the figures.

    .venv/bin/python benchmarks/metrics_export.py --postgres-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from final_attempts import generate, scratch_store

from etl_meta import MetadataStore
from etl_meta.analytics.metrics import metrics_query

BIN = Path(sys.executable).parent
FORMATS = ("csv", "json", "parquet")

#: Run in a child process: one read, then its seconds, rows and added peak memory as JSON.
FRAME_CHILD = """
import json, resource, sys, time
import pandas as pd, pyarrow, sqlalchemy as sa
from etl_meta import MetadataStore
from etl_meta.analytics import metrics_frame
from etl_meta.analytics.metrics import metrics_query
url, how = sys.argv[1], sys.argv[2]
with MetadataStore(url) as store:
    sql = str(metrics_query(store, attempts="all").compile(
        dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    store.jobs.list()  # connect first: the pool's connection is no part of the figure
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if how == "frame":
        rows = len(metrics_frame(store, attempts="all"))
    else:
        raw = store.engine.raw_connection()
        rows = len(pd.read_sql(sql, raw.driver_connection))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": (after - before) / 1024}))
"""


def literal_sql(store: MetadataStore, attempts: str) -> str:
    query = metrics_query(store, attempts=attempts)
    compiled = query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


def timed(commands: dict[str, list[str]], env: dict[str, str], repeats: int) -> dict[str, float]:
    """Median seconds of each command. The commands take turns, one run each per round, so a
    slow spell on a shared machine slows every variant alike instead of one of them."""
    for command in commands.values():
        subprocess.run(command, env=env, check=True, capture_output=True)  # warm-up (page cache)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(runs) for name, runs in times.items()}


def baseline_command(store: MetadataStore, out: Path) -> list[str]:
    sql = literal_sql(store, "all")
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        return ["sh", "-c", f'sqlite3 -csv -header "{url.database}" "$0" > "{out}"', sql]
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return ["psql", conninfo, "-c", f"\\copy ({sql}) TO '{out}' CSV HEADER"]


def frame_figures(url: str, env: dict[str, str], how: str, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", FRAME_CHILD, url, how],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in runs) for key in ("seconds", "rows", "peak_mb")}


def measure(store: MetadataStore, home: Path, repeats: int) -> None:
    backend = store.engine.dialect.name
    url = store.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "ETL_META_DATABASE_URL": url, "ETL_META_HOME": str(home)}
    env["ETL_META_SECRET_KEYS"] = store.settings.secret_keys.get_secret_value()
    autocommit = store.engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as connection:
        if backend == "postgresql":
            connection.execute(sa.text("VACUUM ANALYZE"))  # as a live store's autovacuum would
        rows = connection.execute(sa.text("SELECT count(*) FROM metric_point")).scalar_one()
    out = home / "out"
    export = [str(BIN / "etl-meta"), "metrics", "query"]
    commands = {
        "baseline": baseline_command(store, out.with_suffix(".base.csv")),
        "start-up": [str(BIN / "etl-meta"), "jobs", "list", "-f", "json"],
    }
    for fmt, attempts in [*((f, "all") for f in FORMATS), ("csv", "final")]:
        command = [*export, "--attempts", attempts, "-f", fmt]
        commands[f"{fmt} {attempts}"] = [*command, "-o", str(out.with_suffix(f".{fmt}"))]
    figures = timed(commands, env, repeats)
    baseline, start = figures.pop("baseline"), figures.pop("start-up")
    print(f"{backend}: {rows:,} points; database's own CSV export {baseline:6.2f} s")
    print(
        f"  start-up (`etl-meta jobs list`: Python, imports, store open) {start:5.2f} s = "
        f"{start / baseline:4.2f} × the database's own"
    )
    for name, seconds in figures.items():
        print(
            f"  export {name:13} {seconds:6.2f} s   ÷ database's own "
            f"{seconds / baseline:5.2f}  (target ≤ 1.5; less start-up "
            f"{(seconds - start) / baseline:4.2f})"
        )
    final_ratio = figures["csv final"] / figures["csv all"]
    print(f"  export csv final ÷ all {final_ratio:5.2f}  (target ≤ 1.5)")
    frame = frame_figures(url, env, "frame", repeats)
    read_sql = frame_figures(url, env, "read_sql", repeats)
    for name, f in (("metrics_frame", frame), ("pandas.read_sql", read_sql)):
        print(
            f"  {name:16} {f['seconds']:6.2f} s  {f['rows'] / f['seconds']:>10,.0f} rows/s"
            f"   peak +{f['peak_mb']:7.1f} MB"
        )
    print(f"  frame memory ÷ read_sql's {frame['peak_mb'] / read_sql['peak_mb']:5.2f}  (≤ 0.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server to make a scratch database on")
    parser.add_argument("--runs", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=("all", "sqlite", "postgresql"), default="all")
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    if args.backend != "all":
        backends = [args.backend]
    for backend in backends:
        with (
            tempfile.TemporaryDirectory() as home,
            scratch_store(backend, args.postgres_url, Path(home)) as store,
        ):
            generate(store, args.runs)
            measure(store, Path(home), args.repeats)


if __name__ == "__main__":
    main()
