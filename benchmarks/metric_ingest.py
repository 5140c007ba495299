"""Benchmark: batch metric ingestion through the store against the raw driver, per backend.

For SQLite (a temp file) and, when a server URL is given, PostgreSQL (a scratch database created
for the run and dropped at the end), this measures in one run:

``store``
    ``store.metrics.record(points, execution_id=...)`` of a batch of N point tuples into a fresh
    execution: the whole public call (transaction, lookups, Python validation, bulk insert,
    audit row, commit).
``replay``
    The same batch recorded again into the same execution: every point conflicts, nothing is
    written (the idempotency path).
``raw``
    The driver alone on the same table (``metric_point``: same schema, partitions and indexes;
    a fresh execution): SQLite = ``sqlite3`` ``executemany`` of a plain ``INSERT`` in one
    transaction; PostgreSQL = psycopg 3 binary ``COPY metric_point (...) FROM STDIN`` in one
    transaction. Rows are prepared (ids resolved: the run's series made and their ids read, as
    a hand-written loader must before it writes points; SQLite point ids numbered from the
    highest stored; timestamps converted) before the clock starts, so this is the driver's own
    speed; the ``raw+prep`` column adds that preparation back for reference.

Before every store and raw measurement the points are emptied (``metric_point`` and
``metric_series``; the names stay) and SQLite's WAL checkpointed / PostgreSQL checkpointed, so
both start from the same table state. Each is repeated
``--repeats`` times in alternating order; medians are reported. The target (from the issue) is
store >= 0.5 x raw. The exit code is 0 whatever the figures: this is a measurement, not a test.

    .venv/bin/python benchmarks/metric_ingest.py --postgres-url postgresql://postgres@127.0.0.1/test

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, schema
from etl_meta.config import Settings, normalize_database_url
from etl_meta.db import create_engine

POSTGRES_ENV = "ETL_META_BENCH_POSTGRES_URL"
TARGET_RATIO = 0.5

COMPONENTS = ("extract", "validate", "transform", "aggregate", "load")
#: Metric names; those ending in a counter suffix get integer values, the others floats.
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
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))

# Literal statements; the column order is etl_meta.repository.metrics.POINT_COLUMNS.
SQLITE_RAW_INSERT = (
    "INSERT INTO metric_point (series_id, step, value, recorded_at, id) VALUES (?, ?, ?, ?, ?)"
)
PG_RAW_COPY = "COPY metric_point (series_id, step, value, recorded_at) FROM STDIN (FORMAT BINARY)"
PG_COPY_TYPES = ["int8", "int8", "float8", "timestamptz"]
# The raw loader's preparation: the run's names and series, their ids read back.
SQLITE_RAW_NAME = "INSERT INTO metric_name (name) VALUES (?) ON CONFLICT DO NOTHING"
SQLITE_RAW_NAME_ID = "SELECT id FROM metric_name WHERE name = ?"
SQLITE_RAW_SERIES = (
    "INSERT INTO metric_series (execution_id, component_id, name_id, attempt) "
    "VALUES (?, ?, ?, ?) RETURNING id"
)
SQLITE_LAST_POINT_ID = "SELECT coalesce(max(id), 0) FROM metric_point"
PG_RAW_NAME = SQLITE_RAW_NAME.replace("?", "%s")
PG_RAW_NAME_ID = SQLITE_RAW_NAME_ID.replace("?", "%s")
PG_RAW_SERIES = SQLITE_RAW_SERIES.replace("?", "%s")
SQLITE_EMPTY = ("DELETE FROM metric_point", "DELETE FROM metric_series")
PG_EMPTY = "TRUNCATE metric_point, metric_series"
#: How SQLAlchemy stores ``UTCDateTime`` on SQLite: UTC text, microseconds always present.
SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
SQLITE_FETCH = (
    "SELECT s.component_id, s.attempt, n.name, p.step, p.value, p.recorded_at "
    "FROM metric_point AS p JOIN metric_series AS s ON s.id = p.series_id "
    "JOIN metric_name AS n ON n.id = s.name_id "
    "WHERE s.execution_id = ? ORDER BY s.component_id, s.attempt, n.name, p.step"
)
PG_FETCH = SQLITE_FETCH.replace("?", "%s")

Point = tuple[str, str, float | int, int, int, datetime]
RawRow = tuple[Any, ...]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- workload -------------------------------------------------------------------------------


def make_points(count: int, seed: int = 20260101) -> list[Point]:
    """``count`` distinct points: 5 components x 20 names per step, steps counting up.

    Counters are ints, gauges floats; ``load`` has a retried second attempt on every tenth step.
    Every point has its own timestamp object: mostly UTC with microseconds, whole seconds for
    ``extract`` on every tenth step, and a +01:00 offset for ``aggregate`` on even steps (about
    10 % of points, the slower conversion path).
    """
    rng = random.Random(seed)
    per_step = len(COMPONENTS) * len(METRIC_NAMES)
    integer = [name.endswith(_INTEGER_SUFFIXES) for name in METRIC_NAMES]
    points: list[Point] = []
    for step in range(-(-count // per_step)):
        for c_index, component in enumerate(COMPONENTS):
            base = T0 + timedelta(seconds=step * 30 + c_index * 5)
            whole_seconds = component == "extract" and step % 10 == 0
            local = component == "aggregate" and step % 2 == 0
            attempt = 2 if component == "load" and step % 10 == 0 else 1
            for n_index, name in enumerate(METRIC_NAMES):
                value = rng.randrange(5_000_000) if integer[n_index] else rng.uniform(0, 1000)
                if whole_seconds:
                    recorded_at = base + timedelta(seconds=n_index)
                else:
                    recorded_at = base + timedelta(microseconds=rng.randrange(1_000_000))
                if local:
                    recorded_at = recorded_at.astimezone(PLUS_ONE)
                points.append((component, name, value, step, attempt, recorded_at))
                if len(points) == count:
                    return points
    return points


def raw_rows(
    points: Sequence[Point],
    execution_id: int,
    component_ids: dict[str, int],
    timestamp: Callable[[datetime], Any],
) -> list[RawRow]:
    """The rows a hand-written loader would send, in ``POINT_COLUMNS`` order."""
    return [
        (execution_id, component_ids[c], attempt, name, step, float(value), timestamp(at))
        for c, name, value, step, attempt, at in points
    ]


# --- backends -------------------------------------------------------------------------------


class Backend(ABC):
    """One database: the store on top of it and a raw driver connection next to it."""

    name: str
    url: str

    def __init__(self, workdir: Path) -> None:
        self.settings = Settings(
            _env_file=None, home=workdir, database_url=None, actor="bench@etl-meta"
        )
        self.engine: sa.Engine | None = None
        self.store: MetadataStore | None = None

    def open(self) -> MetadataStore:
        self.engine = create_engine(self.url, settings=self.settings)
        schema.upgrade(self.engine)
        self.store = MetadataStore(engine=self.engine, settings=self.settings)
        self.open_raw()
        return self.store

    def close(self) -> None:
        self.close_raw()
        if self.engine is not None:
            self.engine.dispose()

    @abstractmethod
    def open_raw(self) -> None: ...

    @abstractmethod
    def close_raw(self) -> None: ...

    @abstractmethod
    def reset(self) -> None:
        """Empty the points and settle the write-ahead log, outside any measurement."""
        ...

    @abstractmethod
    def timestamp(self, value: datetime) -> Any:
        """``recorded_at`` as the raw loader sends it."""
        ...

    @abstractmethod
    def raw_points(self, rows: list[RawRow]) -> list[RawRow]:
        """``rows`` (``POINT_COLUMNS``) as ``metric_point`` rows: their series made first."""
        ...

    @abstractmethod
    def raw_insert(self, rows: list[RawRow]) -> None: ...

    @abstractmethod
    def fetch(self, execution_id: int) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def describe(self) -> str: ...


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.path = workdir / "bench.sqlite"
        self.url = f"sqlite:///{self.path}"
        self.raw: sqlite3.Connection | None = None

    def open_raw(self) -> None:
        # The same connection settings as etl_meta.db gives the store's connections.
        self.raw = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
            "PRAGMA synchronous=NORMAL",
        ):
            self.raw.execute(pragma)

    def close_raw(self) -> None:
        if self.raw is not None:
            self.raw.close()

    def reset(self) -> None:
        assert self.raw is not None
        for statement in SQLITE_EMPTY:
            self.raw.execute(statement)
        self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def timestamp(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)

    def raw_points(self, rows: list[RawRow]) -> list[RawRow]:
        assert self.raw is not None
        raw = self.raw
        names: dict[str, int] = {}
        for name in dict.fromkeys(row[3] for row in rows):
            raw.execute(SQLITE_RAW_NAME, (name,))
            names[name] = raw.execute(SQLITE_RAW_NAME_ID, (name,)).fetchone()[0]
        series: dict[tuple[Any, ...], int] = {}
        for e, c, a, n, *_ in rows:
            if (e, c, a, n) not in series:
                (series[e, c, a, n],) = raw.execute(
                    SQLITE_RAW_SERIES, (e, c, names[n], a)
                ).fetchone()
        (last,) = raw.execute(SQLITE_LAST_POINT_ID).fetchone()
        return [
            (series[e, c, a, n], step, value, at, last + number)
            for number, (e, c, a, n, step, value, at) in enumerate(rows, start=1)
        ]

    def raw_insert(self, rows: list[RawRow]) -> None:
        assert self.raw is not None
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            self.raw.executemany(SQLITE_RAW_INSERT, rows)
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def fetch(self, execution_id: int) -> list[tuple[Any, ...]]:
        assert self.raw is not None
        return self.raw.execute(SQLITE_FETCH, (execution_id,)).fetchall()

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL), {self.path}"


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, workdir: Path, server_url: str) -> None:
        super().__init__(workdir)
        server = make_url(normalize_database_url(server_url))
        self.database = f"etl_meta_bench_{os.getpid()}"
        self.url = server.set(database=self.database).render_as_string(hide_password=False)
        self._server_conninfo = _conninfo(server)
        self._conninfo = _conninfo(server.set(database=self.database))
        self.raw: psycopg.Connection[Any] | None = None
        self.server_version = ""
        self._created = False

    def open(self) -> MetadataStore:
        with psycopg.connect(self._server_conninfo, autocommit=True) as admin:
            name = sql.Identifier(self.database)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
            self._created = True
        return super().open()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._created:
                with psycopg.connect(self._server_conninfo, autocommit=True) as admin:
                    name = sql.Identifier(self.database)
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    def open_raw(self) -> None:
        self.raw = psycopg.connect(self._conninfo, autocommit=True)
        version = self.raw.info.server_version
        self.server_version = f"{version // 10000}.{version % 10000}"

    def close_raw(self) -> None:
        if self.raw is not None:
            self.raw.close()

    def reset(self) -> None:
        assert self.raw is not None
        self.raw.execute(PG_EMPTY)
        with contextlib.suppress(psycopg.Error):
            self.raw.execute("CHECKPOINT")  # superusers only; otherwise WAL noise stays

    def timestamp(self, value: datetime) -> datetime:
        return value  # psycopg dumps aware datetimes as timestamptz

    def raw_points(self, rows: list[RawRow]) -> list[RawRow]:
        assert self.raw is not None
        raw = self.raw
        names: dict[str, int] = {}
        series: dict[tuple[Any, ...], int] = {}
        with raw.transaction():
            for name in dict.fromkeys(row[3] for row in rows):
                raw.execute(PG_RAW_NAME, (name,))
                names[name] = raw.execute(PG_RAW_NAME_ID, (name,)).fetchone()[0]
            for e, c, a, n, *_ in rows:
                if (e, c, a, n) not in series:
                    (series[e, c, a, n],) = raw.execute(
                        PG_RAW_SERIES, (e, c, names[n], a)
                    ).fetchone()
        return [(series[e, c, a, n], step, value, at) for e, c, a, n, step, value, at in rows]

    def raw_insert(self, rows: list[RawRow]) -> None:
        assert self.raw is not None
        with self.raw.transaction(), self.raw.cursor() as cur, cur.copy(PG_RAW_COPY) as copy:
            copy.set_types(PG_COPY_TYPES)
            for row in rows:
                copy.write_row(row)

    def fetch(self, execution_id: int) -> list[tuple[Any, ...]]:
        assert self.raw is not None
        return self.raw.execute(PG_FETCH, (execution_id,)).fetchall()

    def describe(self) -> str:
        return f"PostgreSQL {self.server_version}, scratch database {self.database}"


def _conninfo(url: sa.URL) -> str:
    """A libpq URL for psycopg from a SQLAlchemy URL (no ``+psycopg`` driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Samples:
    store: list[float] = field(default_factory=list)
    replay: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    raw_prep: list[float] = field(default_factory=list)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


class Bench:
    def __init__(self, backend: Backend, points: list[Point]) -> None:
        self.backend = backend
        self.points = points
        self.store = backend.open()
        self.job = f"bench_metrics_{os.getpid()}"
        components: list[dict[str, Any]] = []
        for index, name in enumerate(COMPONENTS):
            depends = [COMPONENTS[index - 1]] if index else []
            # Nothing runs the job: any configuration its component type accepts will do.
            components.append(
                {
                    "name": name,
                    "component_type": "read_csv",
                    "configuration": {"path": f"{name}.csv"},
                    "depends_on": depends,
                }
            )
        self.store.jobs.create({"name": self.job, "num_of_retries": 1, "components": components})
        self.component_ids = {c.name: c.id for c in self.store.components.list(self.job)}
        self._runs = 0

    def new_execution(self) -> int:
        self._runs += 1
        execution = self.store.executions.upsert(
            {
                "job": self.job,
                "orchestrator": "dagster",
                "external_run_id": f"bench-{self._runs}",
                "status": "running",
                "started_at": T0,
            }
        )
        return execution.id

    def check(self, size: int) -> None:
        """Warm-up and correctness: store and raw store the same rows; a replay adds none."""
        points = self.points[:size]
        self.backend.reset()
        store_run, raw_run = self.new_execution(), self.new_execution()
        result = self.store.metrics.record(points, execution_id=store_run)
        replay = self.store.metrics.record(points, execution_id=store_run)
        self.backend.raw_insert(
            self.backend.raw_points(
                raw_rows(points, raw_run, self.component_ids, self.backend.timestamp)
            )
        )
        if result.inserted != size or replay.inserted != 0 or replay.skipped != size:
            raise RuntimeError(f"record gave {result}, then {replay} on replay, for {size} points")
        stored, raw = self.backend.fetch(store_run), self.backend.fetch(raw_run)
        if len(stored) != size or stored != raw:
            diff = next(
                (pair for pair in zip(stored, raw, strict=False) if pair[0] != pair[1]), None
            )
            raise RuntimeError(f"store and raw rows differ ({len(stored)}/{len(raw)}): {diff}")

    def measure_store(self, samples: Samples) -> None:
        count = len(self.points)
        self.backend.reset()
        run = self.new_execution()
        elapsed, result = timed(lambda: self.store.metrics.record(self.points, execution_id=run))
        if result.inserted != count:
            raise RuntimeError(f"store inserted {result.inserted} of {count}")
        samples.store.append(elapsed)
        elapsed, result = timed(lambda: self.store.metrics.record(self.points, execution_id=run))
        if result.inserted != 0 or result.skipped != count:
            raise RuntimeError(f"replay gave {result}")
        samples.replay.append(elapsed)

    def measure_raw(self, samples: Samples) -> None:
        count = len(self.points)
        self.backend.reset()
        run = self.new_execution()
        prep, rows = timed(
            lambda: self.backend.raw_points(
                raw_rows(self.points, run, self.component_ids, self.backend.timestamp)
            )
        )
        elapsed, _ = timed(lambda: self.backend.raw_insert(rows))
        stored = len(self.backend.fetch(run))
        if stored != count:
            raise RuntimeError(f"raw stored {stored} of {count}")
        samples.raw.append(elapsed)
        samples.raw_prep.append(prep)

    def profile_store(self, top: int) -> str:
        self.backend.reset()
        run = self.new_execution()
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        self.store.metrics.record(self.points, execution_id=run)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
        return out.getvalue()


def run_backend(backend: Backend, points: list[Point], args: argparse.Namespace) -> dict[str, Any]:
    count = len(points)
    bench = Bench(backend, points)
    log(f"{backend.name}: {backend.describe()}")
    bench.check(min(count, 20_000))
    samples = Samples()
    for repeat in range(args.repeats):
        order = ("store", "raw") if repeat % 2 == 0 else ("raw", "store")
        for kind in order:
            if kind == "store":
                bench.measure_store(samples)
            else:
                bench.measure_raw(samples)
        log(
            f"  {backend.name} run {repeat + 1}/{args.repeats} ({'/'.join(order)}): "
            f"store {samples.store[-1]:.3f}s  replay {samples.replay[-1]:.3f}s  "
            f"raw {samples.raw[-1]:.3f}s (+prep {samples.raw_prep[-1]:.3f}s)"
        )
    profile = bench.profile_store(args.profile_top) if args.profile else None
    return summarize(backend, count, samples, profile)


def rate(count: int, seconds: list[float]) -> float:
    return statistics.median(count / s for s in seconds)


def summarize(
    backend: Backend, count: int, samples: Samples, profile: str | None
) -> dict[str, Any]:
    store = rate(count, samples.store)
    raw = rate(count, samples.raw)
    with_prep = [r + p for r, p in zip(samples.raw, samples.raw_prep, strict=True)]
    summary: dict[str, Any] = {
        "backend": backend.name,
        "database": backend.describe(),
        "store_rows_per_s": round(store),
        "raw_rows_per_s": round(raw),
        "ratio": round(store / raw, 3),
        "target_ratio": TARGET_RATIO,
        "below_target": store / raw < TARGET_RATIO,
        "replay_rows_per_s": round(rate(count, samples.replay)),
        "raw_with_prep_rows_per_s": round(rate(count, with_prep)),
        "range_rows_per_s": {
            "store": spread(count, samples.store),
            "raw": spread(count, samples.raw),
            "replay": spread(count, samples.replay),
        },
        "seconds": {
            "store": [round(s, 4) for s in samples.store],
            "replay": [round(s, 4) for s in samples.replay],
            "raw": [round(s, 4) for s in samples.raw],
            "raw_prep": [round(s, 4) for s in samples.raw_prep],
        },
    }
    if profile is not None:
        summary["profile"] = profile
    return summary


def spread(count: int, seconds: list[float]) -> list[int]:
    """Slowest and fastest run, rows/s."""
    return [round(count / max(seconds)), round(count / min(seconds))]


def format_report(results: list[dict[str, Any]], count: int, repeats: int) -> str:
    lines = [f"metric ingestion: {count:,} points per batch, median of {repeats} runs", ""]
    for r in results:
        line = (
            f"{r['backend']:<11} store {r['store_rows_per_s']:>9,} rows/s  "
            f"raw {r['raw_rows_per_s']:>9,} rows/s  "
            f"ratio {r['ratio']:.2f} (target ≥ {TARGET_RATIO:.2f})"
        )
        if r["below_target"]:
            line += "  BELOW TARGET"
        ranges = r["range_rows_per_s"]
        lines += [
            line,
            f"{'':<11} replay {r['replay_rows_per_s']:>8,} rows/s  "
            f"raw+prep {r['raw_with_prep_rows_per_s']:>9,} rows/s",
            f"{'':<11} range store {_range(ranges['store'])}, raw {_range(ranges['raw'])}, "
            f"replay {_range(ranges['replay'])}",
        ]
    return "\n".join(lines)


def _range(bounds: list[int]) -> str:
    return f"{bounds[0]:,}–{bounds[1]:,}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000, help="points per batch")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or None,
        help=f"PostgreSQL server URL to create the scratch database from (or ${POSTGRES_ENV})",
    )
    parser.add_argument(
        "--backend",
        choices=("all", "sqlite", "postgresql"),
        default="all",
        help="run only one backend (postgresql needs a URL)",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one extra store batch per backend"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="functions in the profile")
    args = parser.parse_args(argv)
    if args.points < 1 or args.repeats < 1:
        parser.error("--points and --repeats must be at least 1")
    if args.backend == "postgresql" and not args.postgres_url:
        parser.error(f"--backend postgresql needs --postgres-url or ${POSTGRES_ENV}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    points = make_points(args.points)
    results: list[dict[str, Any]] = []
    unreachable = False
    with tempfile.TemporaryDirectory(prefix="etl_meta_bench_") as tmp:
        backends: list[Backend] = []
        if args.backend in ("all", "sqlite"):
            backends.append(SqliteBackend(Path(tmp)))
        if args.backend in ("all", "postgresql") and args.postgres_url:
            backends.append(PostgresBackend(Path(tmp), args.postgres_url))
        for backend in backends:
            try:
                results.append(run_backend(backend, points, args))
            except (psycopg.OperationalError, sa.exc.OperationalError) as exc:
                log(f"{backend.name}: cannot connect, skipped: {exc}")
                unreachable = True
            finally:
                backend.close()
    table = format_report(results, args.points, args.repeats)
    for r in results:
        if "profile" in r:
            log(f"\n--- cProfile of one store batch on {r['backend']} (by own time) ---")
            log(r["profile"])
    if args.json:
        log(table)
        document = {
            "points": args.points,
            "repeats": args.repeats,
            "python": platform.python_version(),
            "sqlalchemy": sa.__version__,
            "psycopg": psycopg.__version__,
            "cpus": os.cpu_count(),
            "elapsed_seconds": round(time.perf_counter() - started, 1),
            "results": results,
        }
        print(json.dumps(document, indent=2))
    else:
        print(table)
        log(f"\n(total {time.perf_counter() - started:.0f}s)")
    # The figures never decide the exit code (a measurement, not a test); a dead server does.
    return 2 if unreachable else 0


if __name__ == "__main__":
    sys.exit(main())
