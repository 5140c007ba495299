"""Benchmark: what the etl-meta store costs a Dagster op, and a reconcile pass over many runs.

For SQLite (a temp file) and, when a server URL is given, PostgreSQL (scratch databases created
for the run and dropped at the end), this measures in one run:

**Store overhead per op.** Jobs of N chained ops (default 10, in-process executor,
``execute_in_process`` on a throwaway instance) whose ops (a) do nothing — the baseline — or
(b) use ``EtlMetaResource``: the resource is set up (store opened) once for the run, and every op
calls ``component_config(context)`` and ``log_metrics(context, {10 metrics})``; for reference,
(c) only attaches the same 10 values as output metadata. Reported: median wall time per op of (b)
minus (a), the ratio (b)/(a), the median time of the two store calls measured inside each op, and
(c) minus (a). Because the in-process executor initialises the resource once per run,
the setup cost alone (open a ``MetadataStore`` with its schema check, close it; and the full
Dagster resource initialisation) is reported separately: the multiprocess executor pays it once
per step process.

**Reconcile pass.** Finished runs of an etl-meta job (3 ops built by ``dagster_defs.loader`` from a
catalog snapshot, so they carry ``etl_meta/job``/``etl_meta/revision`` tags and component step
keys) in a persistent temp-dir Dagster instance, created once and shared by both backends. Timed:
a full ``reconcile(...)`` into an empty store (limit 100, looped until nothing remains), a second
full pass (all recorded: the idempotent path), and as baseline Dagster reading the same run
records plus ``get_run_step_stats`` of every run. If creating the runs would take longer than
``--setup-budget`` seconds, fewer runs are created and the totals are scaled (stated in the
report).

Exit code 0 whatever the figures (2 when a database cannot be reached): a measurement, not a test.

    .venv/bin/python benchmarks/dagster_overhead.py --postgres-url postgresql://postgres@127.0.0.1/test

See ``benchmarks/README.md``.
"""

# No ``from __future__ import annotations``: this module defines ops with an annotated
# ``context`` parameter, which Dagster reads at definition time (notes/dagster.md).

import argparse
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from dagster_defs.jobs import TAG_JOB, TAG_REVISION
from dagster_defs.loader import definitions_from_catalog
from dagster_defs.reconcile import reconcile
from dagster_defs.recording import observe_run, record_run
from dagster_defs.resources import DATABASE_URL_ENV, EtlMetaResource
from etl_meta import MetadataStore, schema
from etl_meta.catalog import take_snapshot
from etl_meta.components import ComponentResult, ComponentType, register
from etl_meta.config import Settings, normalize_database_url
from etl_meta.db import create_engine

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

POSTGRES_ENV = "ETL_META_BENCH_POSTGRES_URL"
ACTOR = "bench@etl-meta"

OPS_JOB = "bench_ops"
RECONCILE_JOB = "bench_reconcile"
RECONCILE_COMPONENTS = ("extract", "transform", "load")
METRICS = {
    "rows_read": 1000,
    "rows_written": 990,
    "rows_rejected": 10,
    "bytes_read": 65536,
    "bytes_written": 61440,
    "null_count": 3,
    "duplicate_count": 1,
    "duration_seconds": 0.25,
    "memory_mb": 128.5,
    "error_rate": 0.01,
}
#: Console logging off: events still go to the instance's event log, as in production.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RECONCILE_LIMIT = 100
#: Runs created first to project how long the full set would take.
PROBE_RUNS = 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@register
class BenchNoop(ComponentType):
    """Does nothing and records nothing (so creating runs leaves the target stores empty)."""

    name = "bench.noop"
    description = "benchmark component: no work, no metrics"

    class Config(ComponentType.Config):
        n: int = 0
        label: str = ""
        batch_size: int = 1000

    def run(self, context, config, inputs):
        return ComponentResult(value=config.n)


def component_name(index: int) -> str:
    return f"op{index:02d}"


def configuration(index: int) -> dict[str, Any]:
    return {"n": index, "label": f"step {index}", "batch_size": 500 + index}


def ops_job_definition(ops: int) -> dict[str, Any]:
    """The store job the benchmark's Dagster job is named after: one component per op."""
    return {
        "name": OPS_JOB,
        "num_of_retries": 0,
        "components": [
            {
                "name": component_name(i),
                "component_type": "bench.noop",
                "configuration": configuration(i),
                "depends_on": [component_name(i - 1)] if i else [],
            }
            for i in range(ops)
        ],
    }


def reconcile_job_definition() -> dict[str, Any]:
    return {
        "name": RECONCILE_JOB,
        "num_of_retries": 0,
        "components": [
            {
                "name": name,
                "component_type": "bench.noop",
                "configuration": configuration(i),
                "depends_on": [RECONCILE_COMPONENTS[i - 1]] if i else [],
            }
            for i, name in enumerate(RECONCILE_COMPONENTS)
        ],
    }


# --- databases ------------------------------------------------------------------------------


class Backend(ABC):
    """Creates empty, migrated store databases on one backend, and removes them at the end."""

    name: str

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.settings = Settings(_env_file=None, home=workdir, database_url=None, actor=ACTOR)
        self.created: list[str] = []
        self.version = ""

    @abstractmethod
    def new_url(self, label: str) -> str:
        """A URL for a new, empty database (no schema yet)."""

    def fresh_store(self, label: str, jobs: Sequence[dict[str, Any]]) -> tuple[str, float]:
        """A new migrated database holding ``jobs``; its URL and the seconds it took."""
        start = time.perf_counter()
        url = self.new_url(label)
        engine = create_engine(url, settings=self.settings)
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
        with self.open(url) as store:
            for job in jobs:
                store.jobs.create(job)
        return url, time.perf_counter() - start

    def open(self, url: str) -> MetadataStore:
        return MetadataStore(url, settings=self.settings, actor=ACTOR)

    def drop(self, url: str) -> None:  # noqa: B027 (a default, not an abstract hook)
        """Remove one database made by :meth:`new_url` (by default there is nothing to drop)."""

    def close(self) -> None:
        for url in reversed(self.created):
            self.drop(url)
        self.created.clear()

    @abstractmethod
    def describe(self) -> str:
        """The server and version, for the report."""


class SqliteBackend(Backend):
    name = "sqlite"

    def new_url(self, label: str) -> str:
        self.version = sqlite3.sqlite_version
        path = self.workdir / f"store_{label}.sqlite"
        url = f"sqlite:///{path}"
        self.created.append(url)
        return url

    def drop(self, url: str) -> None:
        path = Path(make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()

    def describe(self) -> str:
        return f"SQLite {self.version} files in {self.workdir}"


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, workdir: Path, server_url: str) -> None:
        super().__init__(workdir)
        self.server = make_url(normalize_database_url(server_url))
        self.prefix = f"etl_meta_bench_{os.getpid()}"

    def _admin(self) -> psycopg.Connection[Any]:
        url = self.server.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(url, autocommit=True)

    def check(self) -> None:
        """Connect once to the administration database (raises when it cannot)."""
        with self._admin():
            pass

    def new_url(self, label: str) -> str:
        database = f"{self.prefix}_{label}"
        with self._admin() as admin:
            name = sql.Identifier(database)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
            version = admin.info.server_version
            self.version = f"{version // 10000}.{version % 10000}"
        url = self.server.set(database=database).render_as_string(hide_password=False)
        self.created.append(url)
        return url

    def drop(self, url: str) -> None:
        database = make_url(url).database
        with self._admin() as admin:
            name = sql.Identifier(database)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    def describe(self) -> str:
        return f"PostgreSQL {self.version}, scratch databases {self.prefix}_*"


def count_rows(url: str, settings: Settings) -> tuple[int, int]:
    """Executions and step attempts in the store (checks, outside any timing)."""
    engine = create_engine(url, settings=settings)
    try:
        with engine.connect() as connection:
            executions = connection.exec_driver_sql("SELECT count(*) FROM execution").scalar_one()
            attempts = connection.exec_driver_sql(
                "SELECT count(*) FROM component_execution"
            ).scalar_one()
    finally:
        engine.dispose()
    return executions, attempts


class StatementCounter:
    """Counts SQL statements sent to one store database (a listener on every engine).

    Only around untimed work. Not counted: SQLite's ``BEGIN`` (PostgreSQL's is implicit, so the
    counts compare), commits, and PostgreSQL's ``COPY`` of metric rows (not a cursor execute).
    """

    def __init__(self, url: str) -> None:
        self.database = make_url(url).database
        self.count = 0

    def _seen(self, conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.engine.url.database == self.database and not statement.startswith("BEGIN"):
            self.count += 1

    def __enter__(self) -> "StatementCounter":
        sa.event.listen(sa.Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: Any) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self._seen)


# --- measurement 1: store overhead per op ---------------------------------------------------

#: Seconds spent in the store calls of each (b) op, appended by the op itself.
IN_OP_SECONDS: list[float] = []


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def bench_noop_op(context: dg.OpExecutionContext) -> None:
    """(a) The baseline: an op that does nothing."""


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def bench_metadata_op(context: dg.OpExecutionContext) -> None:
    """(c) Reference: only the Dagster side of ``log_metrics`` (10 output metadata entries)."""
    context.add_output_metadata({name: float(value) for name, value in METRICS.items()})


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def bench_store_op(context: dg.OpExecutionContext, etl_meta: EtlMetaResource) -> None:
    """(b) Reads its stored configuration and records 10 metrics through the resource."""
    start = time.perf_counter()
    config = etl_meta.component_config(context)
    result = etl_meta.log_metrics(context, METRICS)
    IN_OP_SECONDS.append(time.perf_counter() - start)
    index = int(context.op_handle.name[2:])
    if config != configuration(index) or result.inserted != len(METRICS):
        raise RuntimeError(f"{context.op_handle.name}: config {config}, metrics {result}")


def chain_job(op_def: dg.OpDefinition, ops: int, resources: dict[str, Any]) -> dg.JobDefinition:
    @dg.job(name=OPS_JOB, resource_defs=resources, executor_def=dg.in_process_executor)
    def chain() -> None:
        previous = None
        for index in range(ops):
            invocation = op_def.alias(component_name(index))
            previous = invocation() if previous is None else invocation(after=previous)

    return chain


@dataclass
class OpSamples:
    baseline: list[float] = field(default_factory=list)
    store: list[float] = field(default_factory=list)
    metadata: list[float] = field(default_factory=list)
    in_op: list[float] = field(default_factory=list)
    store_open: list[float] = field(default_factory=list)
    resource_init: list[float] = field(default_factory=list)
    statements_per_op: float = 0.0


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def measure_ops(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    url, _ = backend.fresh_store("ops", [ops_job_definition(args.ops)])
    resource = EtlMetaResource(database_url=url, actor=ACTOR)
    baseline_job = chain_job(bench_noop_op, args.ops, {})
    metadata_job = chain_job(bench_metadata_op, args.ops, {})
    store_job = chain_job(bench_store_op, args.ops, {"etl_meta": resource})
    samples = OpSamples()
    with dg.instance_for_test() as instance:

        def run(job: dg.JobDefinition) -> float:
            elapsed, result = timed(lambda: job.execute_in_process(instance=instance, **QUIET_RUN))
            if not result.success:
                raise RuntimeError(f"{job.name} run {result.run_id} failed")
            return elapsed

        def run_store() -> float:
            IN_OP_SECONDS.clear()
            elapsed = run(store_job)
            if len(IN_OP_SECONDS) != args.ops:
                raise RuntimeError(f"{len(IN_OP_SECONDS)} of {args.ops} ops timed their calls")
            samples.in_op.extend(IN_OP_SECONDS)
            return elapsed

        # Warm-up (imports, caches, the instance's first runs) and a correctness check.
        run(baseline_job)
        run(metadata_job)
        with StatementCounter(url) as statements:
            run_store()
        samples.statements_per_op = statements.count / args.ops
        samples.in_op.clear()
        kinds = ("baseline", "store", "metadata")
        for repeat in range(args.repeats):
            order = kinds[repeat % 3 :] + kinds[: repeat % 3]  # each goes first in turn
            for kind in order:
                if kind == "baseline":
                    samples.baseline.append(run(baseline_job))
                elif kind == "metadata":
                    samples.metadata.append(run(metadata_job))
                else:
                    samples.store.append(run_store())
            log(
                f"  {backend.name} ops run {repeat + 1}/{args.repeats} ({'/'.join(order)}): "
                f"baseline {samples.baseline[-1]:.3f}s  store {samples.store[-1]:.3f}s  "
                f"metadata only {samples.metadata[-1]:.3f}s"
            )
        executions, _ = count_rows(url, backend.settings)
        if executions != args.repeats + 1:
            raise RuntimeError(f"{executions} executions for {args.repeats + 1} store runs")

        # The setup alone, as the multiprocess executor pays it in every step process (which
        # has its instance already: pass it, or build_resources makes an ephemeral one).
        for _ in range(args.repeats):
            for _ in range(args.setup_samples):
                elapsed, opened = timed(
                    lambda: MetadataStore(url, settings=Settings(), actor=ACTOR)
                )
                close, _ = timed(opened.close)
                samples.store_open.append(elapsed + close)
                elapsed, _ = timed(lambda: _init_resource(resource, instance))
                samples.resource_init.append(elapsed)
    return summarize_ops(samples, args.ops)


QUIET_RUN: dict[str, Any] = {"run_config": QUIET}


def _init_resource(resource: EtlMetaResource, instance: dg.DagsterInstance) -> None:
    """Dagster's full resource lifecycle: init, ``setup_for_execution``, teardown."""
    with dg.build_resources({"etl_meta": resource}, instance=instance) as resources:
        resources.etl_meta.store  # noqa: B018  (open between setup and teardown)


def summarize_ops(samples: OpSamples, ops: int) -> dict[str, Any]:
    baseline = statistics.median(samples.baseline)
    store = statistics.median(samples.store)
    open_ms = statistics.median(samples.store_open) * 1000
    per_op_ms = (store - baseline) / ops * 1000
    metadata = statistics.median(samples.metadata)
    return {
        "ops": ops,
        "baseline_run_s": round(baseline, 4),
        "store_run_s": round(store, 4),
        "baseline_per_op_ms": round(baseline / ops * 1000, 2),
        "store_per_op_ms": round(store / ops * 1000, 2),
        "overhead_per_op_ms": round(per_op_ms, 2),
        # The run's one resource setup, spread over its ops, taken back out.
        "overhead_per_op_without_setup_ms": round(per_op_ms - open_ms / ops, 2),
        "ratio": round(store / baseline, 3),
        # Reference: Dagster's cost of the 10 output metadata entries log_metrics adds.
        "metadata_only_per_op_ms": round(metadata / ops * 1000, 2),
        "metadata_overhead_per_op_ms": round((metadata - baseline) / ops * 1000, 2),
        "in_op_store_calls_ms": round(statistics.median(samples.in_op) * 1000, 2),
        "in_op_store_calls_p90_ms": round(_quantile(samples.in_op, 0.9) * 1000, 2),
        "store_statements_per_op": round(samples.statements_per_op, 1),
        "store_open_close_ms": round(open_ms, 2),
        "resource_init_ms": round(statistics.median(samples.resource_init) * 1000, 2),
        "range_run_s": {
            "baseline": [round(min(samples.baseline), 4), round(max(samples.baseline), 4)],
            "store": [round(min(samples.store), 4), round(max(samples.store), 4)],
            "metadata": [round(min(samples.metadata), 4), round(max(samples.metadata), 4)],
        },
        "seconds": {
            "baseline": [round(s, 4) for s in samples.baseline],
            "store": [round(s, 4) for s in samples.store],
            "metadata": [round(s, 4) for s in samples.metadata],
            "in_op": [round(s, 5) for s in samples.in_op],
            "store_open_close": [round(s, 5) for s in samples.store_open],
            "resource_init": [round(s, 5) for s in samples.resource_init],
        },
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- measurement 2: reconcile ---------------------------------------------------------------


@dataclass
class RunSet:
    """The finished runs in the shared Dagster instance, and what creating them cost."""

    instance: dg.DagsterInstance
    created: int
    target: int
    seconds: float
    projected_seconds: float
    run_ids: list[str]

    @property
    def scale(self) -> float:
        return self.target / self.created

    @property
    def scaled(self) -> bool:
        return self.created != self.target


@contextlib.contextmanager
def dagster_runs(workdir: Path, args: argparse.Namespace) -> Iterator[RunSet]:
    """A temp-dir Dagster instance with up to ``--runs`` finished runs of an etl-meta job."""
    source = workdir / "source_store.sqlite"
    source_url = f"sqlite:///{source}"
    settings = Settings(_env_file=None, home=workdir, database_url=None, actor=ACTOR)
    engine = create_engine(source_url, settings=settings)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    # The loader's resource (and so the ops) read this store: it only holds configuration.
    os.environ[DATABASE_URL_ENV] = source_url
    with MetadataStore(source_url, settings=settings, actor=ACTOR) as store:
        store.jobs.create(reconcile_job_definition())
        snapshot = take_snapshot(store)
    job = definitions_from_catalog(snapshot).resolve_job_def(RECONCILE_JOB)
    if TAG_JOB not in job.tags or TAG_REVISION not in job.tags:
        raise RuntimeError(f"job tags {job.tags} lack {TAG_JOB}/{TAG_REVISION}")
    ops_config = {c.name: {"config": c.configuration} for c in snapshot.jobs[0].active_components}
    run_config = {"ops": ops_config, **QUIET}
    home = workdir / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        target = args.runs
        run_ids: list[str] = []
        start = time.perf_counter()
        projected = first = 0.0
        while len(run_ids) < target:
            result = job.execute_in_process(instance=instance, run_config=run_config)
            if not result.success:
                raise RuntimeError(f"setup run {result.run_id} failed")
            run_ids.append(result.run_id)
            done = len(run_ids)
            if done == 1:
                first = time.perf_counter() - start  # includes one-time warm-up
            if done == min(PROBE_RUNS, target) and done > 1:
                rate = (time.perf_counter() - start - first) / (done - 1)
                projected = first + rate * (args.runs - 1)
                if projected > args.setup_budget and args.fallback_runs < args.runs:
                    target = max(args.fallback_runs, done)
                    log(
                        f"setup: {args.runs:,} runs would take ~{projected:.0f}s "
                        f"(> {args.setup_budget:.0f}s budget): creating {target:,} and scaling"
                    )
            if done % 100 == 0:
                log(f"setup: {done:,}/{target:,} runs, {time.perf_counter() - start:.0f}s")
        seconds = time.perf_counter() - start
        if len(run_ids) == args.runs:
            projected = seconds
        log(f"setup: {len(run_ids):,} runs in {seconds:.1f}s")
        yield RunSet(instance, len(run_ids), args.runs, seconds, projected, run_ids)


def full_reconcile(store: MetadataStore, instance: dg.DagsterInstance) -> tuple[int, int]:
    """Reconcile until nothing remains; (recorded, passes)."""
    cursor: float | None = None
    recorded = calls = 0
    while True:
        result = reconcile(store, instance, cursor=cursor, limit=RECONCILE_LIMIT)
        calls += 1
        if result.failed:
            raise RuntimeError(f"reconcile failed for {result.failed[:3]}")
        recorded += result.recorded
        cursor = result.cursor
        if result.remaining == 0:
            return recorded, calls


def dagster_reads(instance: dg.DagsterInstance) -> int:
    """The baseline: Dagster reading the same run records (same paging) and every step's stats."""
    after: datetime | None = None
    count = 0
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(updated_after=after),
            order_by="update_timestamp",
            ascending=True,
            limit=RECONCILE_LIMIT,
        )
        for record in records:
            instance.get_run_step_stats(record.dagster_run.run_id)
            count += 1
        if len(records) < RECONCILE_LIMIT:
            return count
        after = datetime.fromtimestamp(records[-1].update_timestamp.timestamp(), UTC)


def observe_all(instance: dg.DagsterInstance, run_ids: list[str]) -> int:
    """What ``record_run`` reads from Dagster for every run, without any store write: given the
    run records a reconcile pass pages through (as reconcile gives them), the run's events.
    """
    wanted = set(run_ids)
    after: datetime | None = None
    seen = 0
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(updated_after=after),
            order_by="update_timestamp",
            ascending=True,
            limit=RECONCILE_LIMIT,
        )
        for record in records:
            run_id = record.dagster_run.run_id
            if run_id in wanted:
                seen += observe_run(instance, run_id, record=record) is not None
        if len(records) < RECONCILE_LIMIT:
            return seen
        after = datetime.fromtimestamp(records[-1].update_timestamp.timestamp(), UTC)


@dataclass
class ReconcileSamples:
    first: list[float] = field(default_factory=list)
    second: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    observe: list[float] = field(default_factory=list)
    fresh_store: list[float] = field(default_factory=list)
    statements: tuple[float, float] = (0.0, 0.0)


def measure_reconcile(backend: Backend, runs: RunSet, args: argparse.Namespace) -> dict[str, Any]:
    instance, count = runs.instance, runs.created
    samples = ReconcileSamples()
    for repeat in range(args.reconcile_repeats):
        url, made = backend.fresh_store(f"reconcile{repeat}", [reconcile_job_definition()])
        samples.fresh_store.append(made)

        def baseline() -> None:
            elapsed, seen = timed(lambda: dagster_reads(instance))
            if seen != count:
                raise RuntimeError(f"Dagster returned {seen} of {count} runs")
            samples.baseline.append(elapsed)
            elapsed, seen = timed(lambda: observe_all(instance, runs.run_ids))
            samples.observe.append(elapsed)

        if repeat % 2 == 0:
            baseline()
        with backend.open(url) as store:
            elapsed, (recorded, calls) = timed(lambda: full_reconcile(store, instance))
            if recorded != count:
                raise RuntimeError(f"first pass recorded {recorded} of {count} runs")
            samples.first.append(elapsed)
            executions, attempts = count_rows(url, backend.settings)
            expected = (count, count * len(RECONCILE_COMPONENTS))
            if (executions, attempts) != expected:
                raise RuntimeError(f"store holds {(executions, attempts)}, expected {expected}")
            elapsed, (recorded, _) = timed(lambda: full_reconcile(store, instance))
            if recorded != count or count_rows(url, backend.settings) != expected:
                raise RuntimeError(f"second pass recorded {recorded} of {count} runs")
            samples.second.append(elapsed)
        if repeat % 2 == 1:
            baseline()
        log(
            f"  {backend.name} reconcile {repeat + 1}/{args.reconcile_repeats}: "
            f"first {samples.first[-1]:.2f}s ({calls} calls)  second {samples.second[-1]:.2f}s  "
            f"dagster reads {samples.baseline[-1]:.2f}s  observe {samples.observe[-1]:.2f}s"
        )
        backend.drop(url)
        backend.created.remove(url)
    samples.statements = count_statements(backend, instance, runs.run_ids[:10])
    profile = profile_reconcile(backend, instance, args.profile_top) if args.profile else None
    return summarize_reconcile(samples, runs, profile)


def count_statements(
    backend: Backend, instance: dg.DagsterInstance, run_ids: list[str]
) -> tuple[float, float]:
    """Store statements per recorded run, first time and again (untimed, a separate store)."""
    url, _ = backend.fresh_store("statements", [reconcile_job_definition()])
    per_run = []
    with backend.open(url) as store:
        for _ in range(2):
            with StatementCounter(url) as statements:
                for run_id in run_ids:
                    record_run(store, instance, run_id, max_seconds=10)
            per_run.append(statements.count / len(run_ids))
    backend.drop(url)
    backend.created.remove(url)
    return per_run[0], per_run[1]


def profile_reconcile(backend: Backend, instance: dg.DagsterInstance, top: int) -> str:
    url, _ = backend.fresh_store("profile", [reconcile_job_definition()])
    with backend.open(url) as store:
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        full_reconcile(store, instance)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write("by own time:\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def summarize_reconcile(
    samples: ReconcileSamples, runs: RunSet, profile: str | None
) -> dict[str, Any]:
    count = runs.created
    first = statistics.median(samples.first)
    second = statistics.median(samples.second)
    baseline = statistics.median(samples.baseline)
    observe = statistics.median(samples.observe)
    summary: dict[str, Any] = {
        "runs": count,
        "scaled_to": runs.target,
        "scaled": runs.scaled,
        "first_pass_s": round(first, 3),
        "first_pass_runs_per_s": round(count / first, 1),
        "first_pass_ms_per_run": round(first / count * 1000, 2),
        "second_pass_s": round(second, 3),
        "second_pass_runs_per_s": round(count / second, 1),
        "dagster_reads_s": round(baseline, 3),
        "dagster_reads_runs_per_s": round(count / baseline, 1),
        "observe_s": round(observe, 3),
        "store_statements_per_run": {
            "first_pass": round(samples.statements[0], 1),
            "second_pass": round(samples.statements[1], 1),
        },
        "ratio_first": round(first / baseline, 2),
        "ratio_second": round(second / baseline, 2),
        "scaled_s": {
            "first_pass": round(first * runs.scale, 1),
            "second_pass": round(second * runs.scale, 1),
            "dagster_reads": round(baseline * runs.scale, 1),
            "observe": round(observe * runs.scale, 1),
        },
        "seconds": {
            "first_pass": [round(s, 3) for s in samples.first],
            "second_pass": [round(s, 3) for s in samples.second],
            "dagster_reads": [round(s, 3) for s in samples.baseline],
            "observe": [round(s, 3) for s in samples.observe],
            "fresh_store": [round(s, 3) for s in samples.fresh_store],
        },
    }
    if profile is not None:
        summary["profile"] = profile
    return summary


# --- report ---------------------------------------------------------------------------------


def format_report(
    results: list[dict[str, Any]], runs: RunSet | None, args: argparse.Namespace
) -> str:
    lines = [
        f"Dagster overhead of the etl-meta store (medians; {os.cpu_count()} CPUs, load average "
        f"{args.load_before:.1f} before, {_load():.1f} after)"
    ]
    if runs is not None:
        setup = (
            f"setup: {runs.created:,} finished 3-op runs created in {runs.seconds:.1f}s "
            f"({runs.seconds / runs.created * 1000:.0f} ms/run)"
        )
        if runs.scaled:
            setup += (
                f"; {runs.target:,} would take ~{runs.projected_seconds:.0f}s (over the "
                f"{args.setup_budget:.0f}s budget): the {runs.target:,}-run column is SCALED "
                f"×{runs.scale:.2f} from {runs.created:,} runs"
            )
        lines.append(setup)
    for r in results:
        lines += ["", f"{r['backend']}  ({r['database']})"]
        if "ops" in r:
            o = r["ops"]
            lines += [
                f"  store overhead per op: {o['ops']} chained ops, in-process executor, "
                f"{args.repeats} runs",
                f"    baseline op (does nothing)   {o['baseline_per_op_ms']:8.2f} ms/op   "
                f"run {_range(o['range_run_s']['baseline'])} s",
                f"    op using EtlMetaResource     {o['store_per_op_ms']:8.2f} ms/op   "
                f"run {_range(o['range_run_s']['store'])} s",
                f"    store overhead per op        {o['overhead_per_op_ms']:8.2f} ms/op   "
                f"ratio {o['ratio']:.2f}  ({o['overhead_per_op_without_setup_ms']:.2f} ms/op "
                "without the run's one setup)",
                f"    inside the op: component_config + log_metrics  "
                f"{o['in_op_store_calls_ms']:.2f} ms median, {o['in_op_store_calls_p90_ms']:.2f} "
                f"ms p90, {o['store_statements_per_op']:.0f} SQL statements",
                f"    reference: the 10 metrics as output metadata only, no store  "
                f"+{o['metadata_overhead_per_op_ms']:.2f} ms/op over baseline "
                f"(run {_range(o['range_run_s']['metadata'])} s)",
                "  resource setup (once per run in-process; once per step process multiprocess)",
                f"    MetadataStore open + schema check + close {o['store_open_close_ms']:7.2f} ms",
                f"    Dagster resource init (build_resources)   {o['resource_init_ms']:7.2f} ms",
            ]
        if "reconcile" in r:
            c = r["reconcile"]
            scaled = f"{c['scaled_to']:,} runs" + ("*" if c["scaled"] else "")
            statements = c["store_statements_per_run"]
            lines.append(
                f"  reconcile {c['runs']:,} runs, limit {RECONCILE_LIMIT}, "
                f"median of {args.reconcile_repeats}  total   runs/s  ms/run  ÷ base  SQL/run "
                f"{scaled:>11}"
            )
            for label, key, ratio, sql_per_run in (
                (
                    "first pass, empty store",
                    "first_pass",
                    c["ratio_first"],
                    statements["first_pass"],
                ),
                (
                    "second pass, all recorded",
                    "second_pass",
                    c["ratio_second"],
                    statements["second_pass"],
                ),
                ("baseline: Dagster reads", "dagster_reads", 1.0, None),
                (
                    "observe_run alone (reference)",
                    "observe",
                    c["observe_s"] / c["dagster_reads_s"],
                    None,
                ),
            ):
                seconds = c[f"{key}_s"]
                sql_text = f"{sql_per_run:7.1f}" if sql_per_run is not None else f"{'–':>7}"
                lines.append(
                    f"    {label:<34}{seconds:7.2f} s {c['runs'] / seconds:7.1f} "
                    f"{seconds / c['runs'] * 1000:7.2f} {ratio:6.2f}x {sql_text} "
                    f"{c['scaled_s'][key]:9.1f} s"
                )
    return "\n".join(lines)


def _load() -> float:
    """The 1-minute load average: other work on the machine shows up in every figure."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _range(bounds: list[float]) -> str:
    return f"{bounds[0]:.3f}–{bounds[1]:.3f}"


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=10, help="ops per job (measurement 1)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each job variant")
    parser.add_argument(
        "--setup-samples",
        type=int,
        default=10,
        help="resource setups timed per repeat (setup cost alone)",
    )
    parser.add_argument("--runs", type=int, default=1000, help="finished runs to reconcile")
    parser.add_argument(
        "--setup-budget",
        type=float,
        default=180.0,
        help="seconds creating --runs may take; above it, --fallback-runs are created and scaled",
    )
    parser.add_argument("--fallback-runs", type=int, default=300, help="see --setup-budget")
    parser.add_argument(
        "--reconcile-repeats", type=int, default=3, help="reconcile passes into a fresh store"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or None,
        help=f"PostgreSQL server URL to create the scratch databases from (or ${POSTGRES_ENV})",
    )
    parser.add_argument(
        "--backend",
        choices=("all", "sqlite", "postgresql"),
        default="all",
        help="run only one backend (postgresql needs a URL)",
    )
    parser.add_argument(
        "--skip",
        choices=("none", "ops", "reconcile"),
        default="none",
        help="leave one measurement out",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one extra first reconcile per backend"
    )
    parser.add_argument("--profile-top", type=int, default=30, help="functions in the profile")
    args = parser.parse_args(argv)
    if min(args.ops, args.repeats, args.setup_samples, args.reconcile_repeats) < 1:
        parser.error("--ops, --repeats, --setup-samples and --reconcile-repeats must be ≥ 1")
    if args.runs < 1 or args.fallback_runs < 1:
        parser.error("--runs and --fallback-runs must be at least 1")
    if args.backend == "postgresql" and not args.postgres_url:
        parser.error(f"--backend postgresql needs --postgres-url or ${POSTGRES_ENV}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_before = _load()
    started = time.perf_counter()
    logging.getLogger("dagster").setLevel(logging.ERROR)
    results: list[dict[str, Any]] = []
    unreachable = False
    runs: RunSet | None = None
    with (
        tempfile.TemporaryDirectory(prefix="etl_meta_bench_") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        # The resource builds Settings() from the environment: keep it inside the temp dir.
        os.environ["ETL_META_HOME"] = str(workdir / "home")
        backends: list[Backend] = []
        if args.backend in ("all", "sqlite"):
            backends.append(SqliteBackend(workdir))
        if args.backend in ("all", "postgresql") and args.postgres_url:
            postgres = PostgresBackend(workdir, args.postgres_url)
            try:  # before minutes of setup, not after
                postgres.check()
                backends.append(postgres)
            except psycopg.OperationalError as exc:
                log(f"postgresql: cannot connect, skipped: {exc}")
                unreachable = True
        if args.skip != "reconcile" and backends:
            runs = stack.enter_context(dagster_runs(workdir, args))
        for backend in backends:
            try:
                log(f"{backend.name}: measuring")
                result: dict[str, Any] = {"backend": backend.name}
                if args.skip != "ops":
                    result["ops"] = measure_ops(backend, args)
                if runs is not None:
                    result["reconcile"] = measure_reconcile(backend, runs, args)
                result["database"] = backend.describe()
                results.append(result)
            except (psycopg.OperationalError, sa.exc.OperationalError) as exc:
                log(f"{backend.name}: cannot connect, skipped: {exc}")
                unreachable = True
            finally:
                backend.close()
    table = format_report(results, runs, args)
    for r in results:
        if "profile" in r.get("reconcile", {}):
            log(f"\n--- cProfile of one first reconcile pass on {r['backend']} ---")
            log(r["reconcile"]["profile"])
    elapsed = time.perf_counter() - started
    if args.json:
        log(table)
        document = {
            "ops": args.ops,
            "repeats": args.repeats,
            "reconcile_repeats": args.reconcile_repeats,
            "setup": None
            if runs is None
            else {
                "runs_created": runs.created,
                "runs_target": runs.target,
                "seconds": round(runs.seconds, 1),
                "projected_seconds_for_target": round(runs.projected_seconds, 1),
                "scaled": runs.scaled,
            },
            "python": platform.python_version(),
            "dagster": dg.__version__,
            "sqlalchemy": sa.__version__,
            "psycopg": psycopg.__version__,
            "cpus": os.cpu_count(),
            "load_average": {"before": round(args.load_before, 2), "after": round(_load(), 2)},
            "elapsed_seconds": round(elapsed, 1),
            "results": results,
        }
        print(json.dumps(document, indent=2))
    else:
        print(table)
        log(f"\n(total {elapsed:.0f}s)")
    # The figures never decide the exit code (a measurement, not a test); a dead server does.
    return 2 if unreachable else 0


if __name__ == "__main__":
    sys.exit(main())
