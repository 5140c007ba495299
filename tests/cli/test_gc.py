"""`etl-meta gc`: retention from the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from etl_meta.cli.gc import _summary
from etl_meta.store import archive as maintenance
from etl_meta.store.maintenance import GcResult
from tests.factories import unique

OLD = datetime.now(UTC) - timedelta(days=200)
RECENT = datetime.now(UTC) - timedelta(days=1)


def add_run(store, job: str, *, started: datetime, status: str = "success") -> int:
    run = store.executions.upsert(
        {
            "job": job,
            "orchestrator": "airflow",
            "external_run_id": unique("run"),
            "status": status,
            "started_at": started,
            **({"ended_at": started + timedelta(minutes=5)} if status == "success" else {}),
        },
        steps=[
            {"component": "extract", "attempt": 1, "status": "failed"},
            {"component": "extract", "attempt": 2, "status": "success"},
        ],
    )
    store.metrics.record([("extract", "rows", 1.0, s) for s in range(3)], execution_id=run.id)
    return run.id


@pytest.fixture
def seeded(store, factory):
    """Three old finished runs, one recent, one old and still running."""
    job = factory.job().name
    return {
        "old": [add_run(store, job, started=OLD) for _ in range(3)],
        "recent": add_run(store, job, started=RECENT),
        "stuck": add_run(store, job, started=OLD, status="running"),
    }


def remaining(store) -> set[int]:
    return {run.id for run in store.executions.list(limit=1000)}


def test_gc_deletes_old_finished_runs_and_says_how_many(cli, store, seeded):
    result = cli("gc", "--older-than", "90d", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout == "deleted 3 run(s), 6 attempt(s), 9 metric point(s) in 2 batch(es)\n"
    assert "kept 1 queued or running run(s) older than" in result.stderr
    assert remaining(store) == {seeded["recent"], seeded["stuck"]}
    assert len(store.audit.list(action="gc")) == 2


def test_dry_run_reports_exact_counts_and_changes_nothing(cli, store, seeded):
    before = remaining(store)
    result = cli("gc", "--older-than", "90d", "--dry-run", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "would delete 3 run(s), 6 attempt(s), 9 metric point(s) in 2 batch(es)"
    )
    assert remaining(store) == before and store.audit.list(action="gc") == []


def test_nothing_to_delete_is_not_an_error(cli, store, seeded):
    horizon = (OLD - timedelta(days=1)).replace(microsecond=0)
    result = cli("gc", "--older-than", horizon.strftime("%Y-%m-%dT%H:%M:%S"))  # ISO, UTC implied
    assert result.exit_code == 0, result.output
    assert result.stdout == f"nothing older than {horizon:%Y-%m-%d %H:%M:%S}Z\n"
    assert len(remaining(store)) == 5


def test_an_iso_horizon_with_a_zone_works_too(cli, store, seeded):
    horizon = (RECENT - timedelta(hours=1)).astimezone().isoformat()
    result = cli("gc", "--older-than", horizon)
    assert result.exit_code == 0, result.output
    assert remaining(store) == {seeded["recent"], seeded["stuck"]}


def test_archive_writes_parquet_before_deleting(cli, store, seeded, tmp_path):
    target = tmp_path / "archive"
    result = cli("gc", "--older-than", "90d", "--archive", str(target))
    assert result.exit_code == 0, result.output
    [folder] = list(target.iterdir())
    assert result.stdout.strip().endswith(f"; archived to {folder}")
    runs = pd.read_parquet(folder / "runs-000001.parquet")
    assert sorted(runs["id"]) == sorted(seeded["old"])
    assert str(runs["ended_at"].dt.tz) == "UTC"
    assert len(pd.read_parquet(folder / "metrics-000001.parquet")) == 9


def test_a_failed_archive_write_exits_1_and_deletes_nothing(
    cli, store, seeded, tmp_path, monkeypatch
):
    def fail(target: Path, *_args) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(maintenance, "_write_parquet", fail)
    result = cli("gc", "--older-than", "90d", "--archive", str(tmp_path))
    assert result.exit_code == 1
    assert "ArchiveError" in result.stderr and "Permission denied" in result.stderr
    assert "Traceback" not in result.output
    assert len(remaining(store)) == 5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "--older-than"),
        (("--older-than", "soon"), 2, "use a duration like 7d"),
        (("--older-than", "90d", "--batch-size", "0"), 2, "--batch-size"),
        (("--older-than", "2999-01-01T00:00Z"), 1, "must not be in the future"),
    ],
)
def test_bad_arguments_are_refused(cli, store, seeded, args, code, message):
    result = cli("gc", *args)
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output
    assert len(remaining(store)) == 5


def test_an_archive_path_that_is_a_file_is_refused_up_front(cli, store, seeded, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = cli("gc", "--older-than", "90d", "--archive", str(a_file))
    assert result.exit_code == 2 and "Invalid value for '--archive'" in result.output
    assert len(remaining(store)) == 5


def test_summary_lines_group_thousands():
    horizon = datetime(2026, 1, 1, tzinfo=UTC)
    done = GcResult(
        runs=1234,
        attempts=9876,
        metrics=1_000_000,
        batches=3,
        older_than=horizon,
        archive_path=Path("/srv/archive/gc-20260401T000000Z"),
    )
    assert _summary(done) == (
        "deleted 1,234 run(s), 9,876 attempt(s), 1,000,000 metric point(s) in 3 batch(es); "
        "archived to /srv/archive/gc-20260401T000000Z"
    )
    assert _summary(GcResult(0, 0, 0, 0, horizon)) == "nothing older than 2026-01-01 00:00:00Z"
    assert _summary(GcResult(1, 2, 3, 1, horizon, dry_run=True)).startswith(
        "would delete 1 run(s), 2 attempt(s), 3 metric point(s) in 1 batch(es)"
    )
