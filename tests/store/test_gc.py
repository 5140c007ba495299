"""Retention: ``store.maintenance.gc`` deletes old finished runs in short, audited batches."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from etl_meta import ConflictError, MetadataStore, ValidationError
from etl_meta.models import ComponentExecution, metric_points
from etl_meta.store import archive as maintenance
from etl_meta.store.maintenance import ArchiveError, GcResult
from tests.backends import postgresql_only
from tests.factories import count_rows, run_ids, unique

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=1)
HORIZON = NOW - timedelta(days=90)
SECRET = "gc-secret-51c0"


def add_run(store, job, *, status="success", started=OLD, ended=True, metrics=3, **fields):
    """A run with one attempt per component (extract, load) and ``metrics`` points on extract."""
    run = store.executions.upsert(
        {
            "job": job,
            "orchestrator": "dagster",
            "external_run_id": unique("run"),
            "status": status,
            "started_at": started,
            **({"ended_at": started + timedelta(seconds=30)} if ended else {}),
            **fields,
        },
        steps=[
            {"component": "extract", "attempt": 1, "status": "success", "started_at": started},
            {"component": "load", "attempt": 1, "status": "success", "started_at": started},
        ],
    )
    if metrics:
        points = [("extract", "rows", float(i), i, 1, started) for i in range(metrics)]
        store.metrics.record(points, execution_id=run.id)
    return run


def gc_events(store):
    return store.audit.list(action="gc")


@pytest.fixture
def job(factory):
    return factory.job().name


def test_old_finished_runs_go_with_their_attempts_and_metrics_others_stay(store, job):
    old = [
        add_run(store, job, status="success"),
        add_run(store, job, status="failed"),
        add_run(store, job, status="canceled", ended=False),  # no ended_at: started_at counts
    ]
    kept = [
        add_run(store, job, status="success", started=RECENT),
        add_run(store, job, status="running", ended=False),  # stuck for 200 days: a human's call
        add_run(store, job, status="queued", ended=False),
        # started long ago but ended after the horizon: still recent
        add_run(store, job, started=OLD, ended_at=RECENT),
    ]
    result = store.maintenance.gc(older_than=HORIZON)
    assert (result.runs, result.attempts, result.metrics, result.batches) == (3, 6, 9, 1)
    assert result.unfinished_kept == 2 and not result.dry_run and result.archive_files == ()
    assert run_ids(store) == {r.id for r in kept}
    old_ids = [r.id for r in old]
    assert count_rows(store, ComponentExecution, ComponentExecution.execution_id, old_ids) == 0
    assert count_rows(store, metric_points, metric_points.c.execution_id, old_ids) == 0
    kept_ids = [r.id for r in kept]
    assert count_rows(store, ComponentExecution, ComponentExecution.execution_id, kept_ids) == 8
    assert count_rows(store, metric_points, metric_points.c.execution_id, kept_ids) == 12
    assert store.maintenance.gc(older_than=HORIZON).runs == 0  # nothing left to do


def test_batches_commit_separately_each_with_one_audit_event(store, job):
    for _ in range(5):
        add_run(store, job)
    seen: list[int] = []
    result = store.maintenance.gc(older_than=HORIZON, batch_size=2, progress=seen.append)
    assert (result.runs, result.attempts, result.metrics, result.batches) == (5, 10, 15, 3)
    assert seen == [2, 2, 1]
    events = sorted(gc_events(store), key=lambda e: e.id)
    assert len(events) == 3
    assert [e.after for e in events] == [
        {"runs": n, "attempts": 2 * n, "metrics": 3 * n, "older_than": HORIZON.isoformat(),
         "archive": None}
        for n in (2, 2, 1)
    ]  # fmt: skip
    assert {(e.actor, e.entity_type, e.entity_key) for e in events} == {
        ("tester@test", "execution", "batch")
    }


def test_dry_run_counts_exactly_and_changes_nothing(store, job, tmp_path):
    for _ in range(5):
        add_run(store, job, metrics=4)
    add_run(store, job, started=RECENT)
    before = run_ids(store)
    result = store.maintenance.gc(
        older_than=HORIZON, batch_size=2, dry_run=True, archive_dir=tmp_path / "arch"
    )
    assert result == GcResult(
        runs=5, attempts=10, metrics=20, batches=3, older_than=HORIZON, dry_run=True
    )
    assert run_ids(store) == before
    assert gc_events(store) == []
    assert not (tmp_path / "arch").exists()


def test_archive_holds_exactly_the_deleted_rows_with_utc_timestamps(store, job, tmp_path):
    old = [add_run(store, job, run_config={"load": {"password": SECRET}}) for _ in range(3)]
    recent = add_run(store, job, started=RECENT)
    for run in (old[0], recent):
        store.executions.tag(run.id, {"reviewed": "yes"})
    with store.transaction(readonly=True) as session:
        metric_ids = set(
            session.scalars(
                sa.select(metric_points.c.id).where(
                    metric_points.c.execution_id.in_([r.id for r in old])
                )
            )
        )
    result = store.maintenance.gc(older_than=HORIZON, batch_size=2, archive_dir=tmp_path)
    assert result.batches == 2 and result.archive_path is not None
    assert result.archive_path.parent == tmp_path and result.archive_path.name.startswith("gc-")
    assert sorted(p.name for p in result.archive_path.iterdir()) == sorted(
        f"{t}-{n:06d}.parquet" for t in ("runs", "attempts", "metrics", "tags") for n in (1, 2)
    )
    assert set(result.archive_files) == set(result.archive_path.iterdir())
    runs = pd.concat(pd.read_parquet(p) for p in sorted(result.archive_path.glob("runs-*")))
    attempts = pd.concat(pd.read_parquet(p) for p in sorted(result.archive_path.glob("attempts-*")))
    metrics = pd.concat(pd.read_parquet(p) for p in sorted(result.archive_path.glob("metrics-*")))
    tags = pd.concat(pd.read_parquet(p) for p in sorted(result.archive_path.glob("tags-*")))
    assert tags[["execution_id", "key", "value", "source"]].values.tolist() == [
        [old[0].id, "reviewed", "yes", "user"]
    ]
    assert store.executions.get(recent.id).tags == {"reviewed": "yes"}
    assert sorted(runs["id"]) == sorted(r.id for r in old) and recent.id not in set(runs["id"])
    assert set(runs["job_name"]) == {job} and set(runs["status"]) == {"success"}
    assert len(attempts) == 6 and set(attempts["component_name"]) == {"extract", "load"}
    assert set(metrics["id"]) == metric_ids and set(metrics["component_name"]) == {"extract"}
    assert (len(runs), len(attempts), len(metrics)) == (
        result.runs,
        result.attempts,
        result.metrics,
    )
    for frame, column in ((runs, "started_at"), (attempts, "started_at"), (metrics, "recorded_at")):
        assert str(frame[column].dt.tz) == "UTC"
    first = runs.sort_values("id").iloc[0]
    assert first["started_at"] == pd.Timestamp(old[0].started_at)
    assert json.loads(first["run_config"]) == {"load": {"password": "***"}}
    assert SECRET not in "".join(p.read_bytes().decode("latin-1") for p in result.archive_files)
    assert not list(tmp_path.rglob("*.tmp"))
    assert {e.after["archive"] for e in gc_events(store)} == {str(result.archive_path)}


def test_an_archive_that_cannot_be_written_deletes_nothing(store, job, tmp_path):
    for _ in range(3):
        add_run(store, job)
    before = run_ids(store)
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    with pytest.raises(ArchiveError) as caught:
        store.maintenance.gc(older_than=HORIZON, archive_dir=not_a_directory)
    assert caught.value.result.runs == 0 and caught.value.result.batches == 0
    assert run_ids(store) == before
    assert gc_events(store) == []


def test_a_failing_batch_keeps_its_runs_and_the_batches_before_it_stay_done(
    store, job, tmp_path, monkeypatch
):
    old = [add_run(store, job) for _ in range(5)]
    real_write, calls = maintenance._write_parquet, []

    def write(target: Path, *args):
        calls.append(target.name)
        if target.name == "attempts-000002.parquet":
            raise OSError(28, "No space left on device")
        real_write(target, *args)

    monkeypatch.setattr(maintenance, "_write_parquet", write)
    with pytest.raises(ArchiveError, match="No space left on device") as caught:
        store.maintenance.gc(older_than=HORIZON, batch_size=2, archive_dir=tmp_path)
    done = caught.value.result
    assert (done.runs, done.batches, len(done.archive_files)) == (2, 1, 4)
    assert run_ids(store) == {r.id for r in old[2:]}
    assert len(gc_events(store)) == 1
    # The failed batch's files are gone (its runs are still in the store); batch 1's remain.
    assert sorted(p.name for p in done.archive_path.iterdir()) == [
        "attempts-000001.parquet",
        "metrics-000001.parquet",
        "runs-000001.parquet",
        "tags-000001.parquet",
    ]


def test_arguments_are_checked_and_batches_refuse_an_outer_transaction(store, job):
    add_run(store, job)
    for bad in (
        {"older_than": datetime(2020, 1, 1)},
        {"older_than": NOW + timedelta(days=1)},
        {"older_than": HORIZON, "batch_size": 0},
        {"older_than": HORIZON, "batch_size": 10_001},
    ):
        with pytest.raises(ValidationError):
            store.maintenance.gc(**bad)
    with store.transaction(), pytest.raises(ConflictError):
        store.maintenance.gc(older_than=HORIZON)
    with store.transaction():
        assert store.maintenance.gc(older_than=HORIZON, dry_run=True).runs == 1
    assert len(run_ids(store)) == 1


def test_run_requests_keep_the_run_id_of_a_deleted_run(store, job):
    run = add_run(store, job)
    request = store.run_requests.create({"job": job, "request_key": "k"})
    with store.transaction() as session:  # as a sensor would after launching it
        session.execute(
            sa.text("UPDATE run_request SET external_run_id = :rid WHERE id = :id"),
            {"rid": run.external_run_id, "id": request.id},
        )
    assert store.maintenance.gc(older_than=HORIZON).runs == 1
    assert store.run_requests.get(request.id).external_run_id == run.external_run_id


def test_gc_is_safe_while_an_orchestrator_keeps_writing(store, store_url, settings, job):
    old = [add_run(store, job) for _ in range(12)]
    writes, errors, written_runs = [0], [], []
    stop = threading.Event()

    def writer() -> None:
        with MetadataStore(store_url, settings=settings) as other:
            while not stop.is_set():
                try:
                    run = add_run(other, job, status="running", started=NOW, ended=False)
                    other.metrics.record([("load", "bytes", 1.0)], execution_id=run.id)
                    other.executions.upsert(
                        {"job": job, "orchestrator": "dagster",
                         "external_run_id": run.external_run_id, "status": "success",
                         "ended_at": datetime.now(UTC)}
                    )  # fmt: skip
                    written_runs.append(run.id)
                    writes[0] += 1
                except Exception as exc:  # reported below, not swallowed
                    errors.append(exc)
                    return

    def between_batches(_runs: int) -> None:
        # Let the writer get at least one run in between every two batches.
        seen, deadline = writes[0], time.monotonic() + 10
        while writes[0] == seen and not errors and time.monotonic() < deadline:
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = store.maintenance.gc(older_than=HORIZON, batch_size=2, progress=between_batches)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert (result.runs, result.batches) == (12, 6)
    assert len(written_runs) >= 6
    remaining = run_ids(store)
    assert remaining == set(written_runs) and not remaining & {r.id for r in old}
    assert count_rows(store, metric_points, metric_points.c.execution_id, written_runs) == 4 * len(
        written_runs
    )


@postgresql_only()  # row locks: SQLite serializes whole write transactions instead
def test_postgresql_skips_a_run_locked_by_a_writer_instead_of_waiting(store, job, backend):
    busy, idle = add_run(store, job), add_run(store, job)
    with store.engine.connect() as writer:
        writer.execute(
            sa.text("SELECT id FROM execution WHERE id = :id FOR UPDATE"), {"id": busy.id}
        )
        started = time.monotonic()
        first = store.maintenance.gc(older_than=HORIZON)
        assert time.monotonic() - started < 5
        writer.rollback()
    assert first.runs == 1 and run_ids(store) == {busy.id}
    assert store.maintenance.gc(older_than=HORIZON).runs == 1  # next pass gets it
    assert run_ids(store) == set()
    assert idle.id not in run_ids(store)
