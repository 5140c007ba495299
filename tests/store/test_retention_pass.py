"""The retention pass: per-job policies roll raw points up, then archive and delete old runs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from etl_meta import ConflictError, MetadataStore, ValidationError
from etl_meta.models import MetricRollup, metric_points
from tests.backends import postgresql_only
from tests.factories import count_rows, run_ids, unique

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
DAY = timedelta(days=1)


def add_run(store, job, *, age_days, status="success", points=True):
    """A finished run ``age_days`` old, with 3 points of ``rows`` on extract over two UTC days
    (steps 0 and 1 on the first day, 2 on the next) and one of ``bytes`` on load."""
    started = NOW - timedelta(days=age_days)
    ended = {"ended_at": started + timedelta(hours=1)} if status in ("success", "failed") else {}
    run = store.executions.upsert(
        {
            "job": job,
            "orchestrator": "dagster",
            "external_run_id": unique("run"),
            "status": status,
            "started_at": started,
            **ended,
        },
        steps=[
            {"component": "extract", "attempt": 1, "status": "success", "started_at": started},
            {"component": "load", "attempt": 1, "status": "success", "started_at": started},
        ],
    )
    if points:
        store.metrics.record(
            [
                ("extract", "rows", 5.0, 0, 1, started),
                ("extract", "rows", 1.0, 1, 1, started + timedelta(minutes=1)),
                ("extract", "rows", 7.0, 2, 1, started + DAY),
                ("load", "bytes", 2.5, 0, 1, started),
            ],
            execution_id=run.id,
        )
    return run


def events(store):
    return store.audit.list(action="retention")


@pytest.fixture
def archive_store(store_url, settings, tmp_path):
    archived = settings.model_copy(update={"retention_archive_dir": tmp_path / "archive"})
    with MetadataStore(store_url, settings=archived) as opened:
        yield opened


@pytest.fixture
def jobs(factory, store):
    """Three jobs under a default of 30 raw days and 60 rollup days; ``held`` is on hold."""
    names = {key: factory.job().name for key in ("plain", "short", "held")}
    store.retention.set_default({"raw_days": 30, "rollup_days": 60})
    store.retention.set_job(names["short"], {"raw_days": 5})
    store.retention.set_job(names["held"], {"legal_hold": True, "hold_reason": "case 7"})
    return names


def test_old_runs_are_rolled_up_then_deleted_and_recent_held_and_unfinished_ones_stay(store, jobs):
    plain, short, held = jobs["plain"], jobs["short"], jobs["held"]
    expired = add_run(store, plain, age_days=200)
    rolled = add_run(store, plain, age_days=50)
    recent = add_run(store, plain, age_days=10)
    short_rolled = add_run(store, short, age_days=10)  # raw_days 5 for this job only
    stuck = add_run(store, plain, age_days=200, status="running")
    held_runs = [add_run(store, held, age_days=age) for age in (200, 50)]
    result = store.maintenance.apply_retention()
    lines = {line.job: line for line in result.jobs}
    assert (lines[plain].runs_deleted, lines[plain].attempts_deleted) == (1, 2)
    assert (lines[plain].points_deleted, lines[plain].runs_rolled_up) == (4, 1)
    assert lines[plain].points_rolled_up == 4
    assert lines[plain].rollups_written == 3
    assert lines[plain].unfinished_kept == 1
    assert (lines[short].runs_rolled_up, lines[short].runs_deleted) == (1, 0)
    assert lines[held].status == "held" and lines[held].hold_reason == "case 7"
    assert not lines[held].changed
    assert expired.id not in run_ids(store)
    raw_left = [recent.id, stuck.id, *(r.id for r in held_runs)]
    assert count_rows(store, metric_points, metric_points.c.execution_id, raw_left) == 4 * len(
        raw_left
    )
    assert (
        count_rows(store, metric_points, metric_points.c.execution_id, [rolled.id, short_rolled.id])
        == 0
    )
    with store.transaction(readonly=True) as session:
        rollups = session.execute(
            sa.select(MetricRollup).where(MetricRollup.execution_id == rolled.id)
        ).scalars()
        found = sorted(
            (r.name, r.day, r.point_count, r.min_value, r.max_value, r.sum_value,
             r.first_step, r.first_value, r.last_step, r.last_value)
            for r in rollups
        )  # fmt: skip
    first_day = (NOW - timedelta(days=50)).date()
    assert found == [
        ("bytes", first_day, 1, 2.5, 2.5, 2.5, 0, 2.5, 0, 2.5),
        ("rows", first_day, 2, 1.0, 5.0, 6.0, 0, 5.0, 1, 1.0),
        ("rows", first_day + DAY, 1, 7.0, 7.0, 7.0, 2, 7.0, 2, 7.0),
    ]
    assert isinstance(found[0][1], date)
    assert {e.entity_key for e in events(store)} == {plain, short}
    assert len(events(store)) == 3  # plain: one expire batch, one rollup batch; short: rollup


def test_a_second_pass_right_after_does_nothing_and_writes_no_audit(store, jobs):
    add_run(store, jobs["plain"], age_days=200)
    add_run(store, jobs["plain"], age_days=50)
    assert store.maintenance.apply_retention().changed
    audited = len(events(store))
    again = store.maintenance.apply_retention()
    assert not again.changed and all(line.batches == 0 for line in again.jobs)
    assert len(events(store)) == audited


def test_dry_run_reports_exactly_what_the_pass_then_does_and_writes_nothing(store, jobs):
    for age in (200, 150, 50, 40, 10):
        add_run(store, jobs["plain"], age_days=age)
    before = run_ids(store)
    preview = store.maintenance.apply_retention(dry_run=True)
    assert preview.dry_run and run_ids(store) == before and events(store) == []
    with store.transaction(readonly=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(MetricRollup)) == 0
    done = store.maintenance.apply_retention(batch_size=1)
    for planned, did in zip(preview.jobs, done.jobs, strict=True):
        assert (planned.job, planned.runs_deleted, planned.attempts_deleted) == (
            did.job, did.runs_deleted, did.attempts_deleted
        )  # fmt: skip
        assert (planned.points_deleted, planned.runs_rolled_up, planned.points_rolled_up) == (
            did.points_deleted, did.runs_rolled_up, did.points_rolled_up
        )  # fmt: skip
    plain = next(line for line in done.jobs if line.job == jobs["plain"])
    assert (plain.runs_deleted, plain.runs_rolled_up, plain.batches) == (2, 2, 4)


@pytest.mark.extra("analytics")  # Parquet: pyarrow, read back with pandas
def test_expired_runs_are_archived_with_their_raw_points_and_rollups(archive_store, factory):
    import pandas as pd

    store = archive_store
    job = factory.job().name
    store.retention.set_default({"raw_days": 30, "rollup_days": 60, "archive": True})
    old = add_run(store, job, age_days=200)
    rolled = add_run(store, job, age_days=50)
    store.executions.tag(old.id, {"reviewed": "yes"})
    # First a pass as of 150 days ago: the 200-day-old run is then past raw_days (30) only,
    # so it is rolled up; today it expires, and the archive holds its rollups.
    store.maintenance.apply_retention(now=NOW - timedelta(days=150))
    assert count_rows(store, metric_points, metric_points.c.execution_id, [old.id]) == 0
    result = store.maintenance.apply_retention()
    assert result.archive_path is not None and result.archive_path.name.startswith("retention-")
    names = sorted(p.name for p in result.archive_path.iterdir())
    assert names == sorted(
        f"{t}-000001.parquet" for t in ("runs", "attempts", "metrics", "tags", "rollups")
    )
    runs = pd.read_parquet(result.archive_path / "runs-000001.parquet")
    rollups = pd.read_parquet(result.archive_path / "rollups-000001.parquet")
    tags = pd.read_parquet(result.archive_path / "tags-000001.parquet")
    assert list(runs["id"]) == [old.id] and set(runs["job_name"]) == {job}
    assert sorted(rollups["point_count"]) == [1, 1, 2] and set(rollups["execution_id"]) == {old.id}
    assert list(tags["key"]) == ["reviewed"]
    assert run_ids(store) == {rolled.id}
    expire_events = [e for e in events(store) if e.after["phase"] == "expire"]
    assert [e.after["archive"] for e in expire_events] == [str(result.archive_path)]


@pytest.mark.extra("analytics")
def test_a_run_past_both_horizons_at_once_is_archived_with_its_raw_points(archive_store, factory):
    import pandas as pd

    job = factory.job().name
    archive_store.retention.set_default({"raw_days": 30, "rollup_days": 60, "archive": True})
    old = add_run(archive_store, job, age_days=200)
    result = archive_store.maintenance.apply_retention()
    metrics = pd.read_parquet(result.archive_path / "metrics-000001.parquet")
    assert len(metrics) == 4 and set(metrics["execution_id"]) == {old.id}
    assert str(metrics["recorded_at"].dt.tz) == "UTC"


def test_an_archiving_policy_without_an_archive_directory_is_refused_before_any_change(
    store, factory
):
    job = factory.job().name
    store.retention.set_default({"raw_days": 30, "rollup_days": 60, "archive": True})
    old = add_run(store, job, age_days=200)
    with pytest.raises(ValidationError, match="ETL_META_RETENTION_ARCHIVE_DIR"):
        store.maintenance.apply_retention()
    assert old.id in run_ids(store) and events(store) == []


def test_no_policy_means_nothing_is_touched(store, factory):
    job = factory.job().name
    old = add_run(store, job, age_days=2000)
    result = store.maintenance.apply_retention()
    assert [(line.job, line.status) for line in result.jobs] == [(job, "no policy")]
    assert old.id in run_ids(store)


def test_arguments_are_checked_and_the_pass_refuses_an_outer_transaction(store, jobs):
    for bad in ({"now": datetime(2020, 1, 1)}, {"now": datetime.now(UTC) + DAY},
                {"batch_size": 0}):  # fmt: skip
        with pytest.raises(ValidationError):
            store.maintenance.apply_retention(**bad)
    with store.transaction(), pytest.raises(ConflictError):
        store.maintenance.apply_retention()
    with store.transaction():
        assert store.maintenance.apply_retention(dry_run=True).dry_run


@postgresql_only()  # row locks: SQLite serializes whole write transactions instead
def test_postgresql_passes_over_a_run_a_writer_holds_and_the_next_pass_gets_it(store, jobs):
    busy = add_run(store, jobs["plain"], age_days=50)
    idle = add_run(store, jobs["plain"], age_days=50)
    with store.engine.connect() as writer:
        writer.execute(
            sa.text("SELECT id FROM execution WHERE id = :id FOR UPDATE"), {"id": busy.id}
        )
        first = store.maintenance.apply_retention()  # would block here without SKIP LOCKED
        writer.rollback()
    plain = next(line for line in first.jobs if line.job == jobs["plain"])
    assert plain.runs_rolled_up == 1
    assert count_rows(store, metric_points, metric_points.c.execution_id, [busy.id]) == 4
    assert count_rows(store, metric_points, metric_points.c.execution_id, [idle.id]) == 0
    second = store.maintenance.apply_retention()
    assert next(line for line in second.jobs if line.job == jobs["plain"]).runs_rolled_up == 1
    assert count_rows(store, metric_points, metric_points.c.execution_id, [busy.id]) == 0


def test_the_pass_is_safe_while_an_orchestrator_keeps_writing(store, store_url, settings, jobs):
    plain = jobs["plain"]
    old = [add_run(store, plain, age_days=age) for age in (200, 200, 50, 50)]
    errors: list[Exception] = []
    written: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        with MetadataStore(store_url, settings=settings) as other:
            while not stop.is_set():
                try:
                    written.append(add_run(other, plain, age_days=0).id)
                except Exception as exc:  # reported below, not swallowed
                    errors.append(exc)
                    return

    def between_batches(_job: str, _phase: str, _runs: int) -> None:
        # Let the writer get at least one run in between every two batches.
        seen, deadline = len(written), time.monotonic() + 10
        while len(written) == seen and not errors and time.monotonic() < deadline:
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = store.maintenance.apply_retention(batch_size=1, progress=between_batches)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    line = next(line for line in result.jobs if line.job == plain)
    assert (line.runs_deleted, line.runs_rolled_up, line.batches) == (2, 2, 4)
    assert len(written) >= 4
    assert count_rows(store, metric_points, metric_points.c.execution_id, written) == 4 * len(
        written
    )
    assert not run_ids(store) & {r.id for r in old[:2]}
