"""Several orchestrator deployments writing to one store at once, each in its own process.

Each writer poses as a deployment: it records its own runs (the run with its step attempts,
then each step's metric points) and, interleaved with them, replays its neighbour's runs, as a
second deployment's reconciliation or a sensor's replay would. Every writer starts writing at
the same moment (a barrier), after its process has started and imported the store.

Used by tests/store/test_concurrent_deployments.py (both backends, a few runs) and by
benchmarks/scale_profile.py (PostgreSQL, throughput against one writer alone).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta.config import Settings
from etl_meta.db import create_engine

JOB = "deployments"
COMPONENTS = ("extract", "transform", "load")
NAMES = tuple(f"metric_{k:02d}" for k in range(10))
STARTED = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    writers: int
    runs: int  # own runs per writer; each also replays as many of its neighbour's
    steps: int  # points per metric series

    @property
    def expected(self) -> dict[str, int]:
        runs = self.writers * self.runs
        return {
            "runs": runs,
            "attempts": runs * len(COMPONENTS),
            "points": runs * len(COMPONENTS) * len(NAMES) * self.steps,
        }


def settings(home: Path) -> Settings:
    """The writers' settings: the environment's secret keys, nothing else from it."""
    return Settings(_env_file=None, home=home, database_url=None, actor="writer@deployments")


def create_job(store: MetadataStore) -> None:
    """The job every writer records runs of: a chain of three components."""
    components = [
        {
            "name": name,
            # Nothing runs the job: any configuration the type accepts will do.
            "component_type": "read_csv",
            "configuration": {"path": f"{name}.csv"},
            "depends_on": [COMPONENTS[i - 1]] if i else [],
        }
        for i, name in enumerate(COMPONENTS)
    ]
    store.jobs.create({"name": JOB, "num_of_retries": 1, "components": components})


def run_ids(writer: int, runs: int) -> list[str]:
    return [f"deployment-{writer}-run-{k:05d}" for k in range(runs)]


def orchestrator_of(writer: int) -> str:
    return "dagster" if writer % 2 == 0 else "airflow"


def record_run(store: MetadataStore, orchestrator: str, run_id: str, steps: int) -> int:
    """One run as an orchestrator records it; returns how many points it submitted."""
    attempts = [
        {"component": c, "attempt": 1, "status": "success", "started_at": STARTED}
        for c in COMPONENTS
    ]
    run = {
        "job": JOB,
        "orchestrator": orchestrator,
        "external_run_id": run_id,
        "status": "success",
        "started_at": STARTED,
        "ended_at": STARTED + timedelta(minutes=5),
    }
    store.executions.upsert(run, steps=attempts)
    submitted = 0
    for component in COMPONENTS:
        points = [
            (component, name, float(step), step, 1, STARTED + timedelta(seconds=step))
            for step in range(steps)
            for name in NAMES
        ]
        store.metrics.record(points, orchestrator=orchestrator, run_id=run_id)
        submitted += len(points)
    return submitted


def write(url: str, home: str, writer: int, work: Workload, start: Any) -> dict[str, Any]:
    """One deployment's writes: its own runs interleaved with replays of its neighbour's."""
    engine = create_engine(url, settings=settings(Path(home)))
    store = MetadataStore(engine=engine, settings=settings(Path(home)))
    neighbour = (writer + 1) % work.writers
    own = [(orchestrator_of(writer), r) for r in run_ids(writer, work.runs)]
    replays = [(orchestrator_of(neighbour), r) for r in run_ids(neighbour, work.runs)]
    submitted, errors = 0, []
    start.wait()
    began = time.time()  # wall clock: compared across processes
    for orchestrator, run_id in [item for pair in zip(own, replays, strict=True) for item in pair]:
        try:
            submitted += record_run(store, orchestrator, run_id, work.steps)
        except Exception as exc:  # a lost write is the finding, reported by the caller
            errors.append(f"{run_id}: {type(exc).__name__}: {exc}")
    ended = time.time()
    engine.dispose()
    return {"submitted": submitted, "began": began, "ended": ended, "errors": errors}


def _process(url: str, home: str, writer: int, work: Workload, start: Any, out: Any) -> None:
    out.put(write(url, home, writer, work, start))


def run(url: str, home: Path, work: Workload, *, timeout: float = 600) -> dict[str, Any]:
    """Every writer in its own (spawned) process; what they did, from first write to last."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(work.writers, timeout=timeout), context.Queue()
    processes = [
        context.Process(target=_process, args=(url, str(home), w, work, start, out))
        for w in range(work.writers)
    ]
    for process in processes:
        process.start()
    try:
        results = [out.get(timeout=timeout) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    submitted = sum(r["submitted"] for r in results)
    wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {
        "submitted": submitted,
        "wall_seconds": wall,
        "errors": [e for r in results for e in r["errors"]],
    }


#: Rows, and distinct keys, of what the writers record (each key exactly once when correct).
_COUNTS = {
    "runs": ("execution", "orchestrator, external_run_id"),
    "attempts": ("component_execution", "execution_id, component_id, attempt"),
    "points": (
        "metric_point p JOIN metric_series s ON s.id = p.series_id "
        "JOIN metric_name n ON n.id = s.name_id",
        "s.execution_id, s.component_id, s.attempt, n.name, p.step",
    ),
}


def stored(url: str, home: Path) -> dict[str, Any]:
    """What the store holds: rows and distinct keys per kind, and audit rows per entity."""
    engine = create_engine(url, settings=settings(home))
    try:
        with engine.connect() as connection:
            found: dict[str, Any] = {}
            for kind, (table, key) in _COUNTS.items():
                rows = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                distinct = connection.execute(
                    sa.text(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table}) AS k")
                ).scalar_one()
                found[kind] = {"rows": rows, "distinct": distinct}
            found["audit"] = dict(
                connection.execute(
                    sa.text("SELECT entity_type, count(*) FROM audit_event GROUP BY entity_type")
                ).all()
            )
            return found
    finally:
        engine.dispose()


def problems(work: Workload, found: dict[str, Any], errors: list[str]) -> list[str]:
    """Everything not recorded exactly once: lost, duplicated, audited twice, failed."""
    expected = work.expected
    out = [f"write failed: {e}" for e in errors[:10]]
    for kind, count in expected.items():
        rows, distinct = found[kind]["rows"], found[kind]["distinct"]
        if distinct != count:
            out.append(f"{kind}: {count - distinct} lost ({distinct} of {count})")
        if rows != distinct:
            out.append(f"{kind}: {rows - distinct} duplicated")
    # A replay changes nothing, not even the audit trail: one audit row per run and attempt.
    audited = found["audit"]
    for entity, kind in (("execution", "runs"), ("component_execution", "attempts")):
        if audited.get(entity, 0) != expected[kind]:
            out.append(f"audit {entity}: {audited.get(entity, 0)} rows for {expected[kind]}")
    return out
