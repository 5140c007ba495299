"""PostgreSQL partitions of metric points: created ahead, caught by DEFAULT, dropped whole by gc.

Each test runs on a database of its own (partitions are DDL, which the shared test database's
reset does not undo). Series ids are moved with ``setval`` to put runs in chosen ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta import schema as schema_mod
from etl_meta.analytics import metrics_frame
from etl_meta.cli import app
from etl_meta.repository import partitions
from tests.backends import isolated_settings
from tests.factories import Factory, unique

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=1)
HORIZON = NOW - timedelta(days=90)
SIZE = partitions.SERIES_PER_PARTITION


@pytest.fixture
def pg_store(pg_scratch_url: str, tmp_path) -> Iterator[MetadataStore]:
    settings = isolated_settings(tmp_path)
    engine = sa.create_engine(pg_scratch_url)
    schema_mod.upgrade(engine, settings=settings)
    engine.dispose()
    with MetadataStore(pg_scratch_url, settings=settings) as store:
        Factory(store).job(name="sales")
        yield store


def next_series(store: MetadataStore, series_id: int) -> None:
    """The next series the store writes gets ``series_id``."""
    with store.engine.begin() as connection:
        connection.exec_driver_sql(f"SELECT setval('metric_series_id_seq', {series_id - 1})")


def run_with_points(store: MetadataStore, started: datetime, names: int = 3, steps: int = 4):
    run = store.executions.upsert(
        {
            "job": "sales",
            "orchestrator": "dagster",
            "external_run_id": unique("run"),
            "status": "success",
            "started_at": started,
            "ended_at": started + timedelta(seconds=30),
        }
    )
    points = [
        ("extract", f"m{n}", float(step), step, 1, started)
        for n in range(names)
        for step in range(steps)
    ]
    store.metrics.record(points, execution_id=run.id)
    return run


def count(store: MetadataStore, table: str) -> int:
    with store.engine.connect() as connection:
        return connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()


def ranges(store: MetadataStore) -> list[tuple[str, int, int]]:
    with store.engine.connect() as connection:
        return [(p.name, p.low, p.high) for p in partitions.partitions(connection)]


def test_a_new_store_has_two_empty_ranges_ahead(pg_store):
    assert ranges(pg_store) == [
        ("metric_point_1", 1, 1 + SIZE),
        (f"metric_point_{1 + SIZE}", 1 + SIZE, 1 + 2 * SIZE),
    ]
    assert partitions.ensure_ahead(pg_store.engine) == partitions.PartitionWork()


def test_points_beyond_every_range_wait_in_default_and_move_into_a_new_range(pg_store):
    next_series(pg_store, 2 * SIZE + 5)  # above both ranges: maintenance did not run
    run_with_points(pg_store, RECENT)
    assert count(pg_store, "metric_point_default") == 12
    before = metrics_frame(pg_store, attempts="all")

    work = partitions.ensure_ahead(pg_store.engine)

    assert work.moved_points == 12 and work.skipped is None
    assert work.created == tuple(f"metric_point_{1 + k * SIZE}" for k in (2, 3, 4))
    assert count(pg_store, "metric_point_default") == 0
    assert count(pg_store, f"metric_point_{1 + 2 * SIZE}") == 12
    pd.testing.assert_frame_equal(metrics_frame(pg_store, attempts="all"), before)
    # Writing into the new range works, and a replay there still writes nothing.
    run = run_with_points(pg_store, RECENT)
    assert (
        pg_store.metrics.record([("extract", "m0", 0.0, 0, 1, RECENT)], execution_id=run.id).skipped
        == 1
    )


def test_gc_drops_a_range_whose_runs_all_expired_and_deletes_the_rest_row_by_row(pg_store):
    [run_with_points(pg_store, OLD) for _ in range(3)]  # series 1..9: the first range
    next_series(pg_store, SIZE + 1)
    run_with_points(pg_store, OLD)  # expired, but in the range a recent run shares
    recent = run_with_points(pg_store, RECENT)
    kept = metrics_frame(pg_store, run=recent.id, attempts="all")
    assert pg_store.maintenance.gc(older_than=HORIZON, dry_run=True).metrics == 48

    result = pg_store.maintenance.gc(older_than=HORIZON)

    assert result.partitions_dropped == ("metric_point_1",)
    assert (result.runs, result.metrics) == (4, 48)
    assert next(name for name, _, _ in ranges(pg_store)) == f"metric_point_{1 + SIZE}"
    with pg_store.engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    assert "metric_point_1" not in tables
    assert {r.id for r in pg_store.executions.list()} == {recent.id}  # not old nor straddling
    pd.testing.assert_frame_equal(metrics_frame(pg_store, run=recent.id, attempts="all"), kept)
    assert count(pg_store, "metric_point") == 12 and count(pg_store, "metric_series") == 3
    events = [e for e in pg_store.audit.list() if e.action == "gc"]
    dropped = [e for e in events if e.entity_type == "metric_partition"]
    assert len(dropped) == 1 and dropped[0].after == {
        "partitions": ["metric_point_1"],
        "metrics": 36,
        "older_than": HORIZON.isoformat(),
    }
    # Nothing left to drop or delete: a second gc changes nothing, not even the audit trail.
    again = pg_store.maintenance.gc(older_than=HORIZON)
    assert (again.runs, again.metrics, again.partitions_dropped) == (0, 0, ())
    assert len([e for e in pg_store.audit.list() if e.action == "gc"]) == len(events)


def test_a_range_still_filling_is_never_dropped(pg_store):
    run_with_points(pg_store, OLD)  # the only series: its range is the one being written

    result = pg_store.maintenance.gc(older_than=HORIZON)

    assert result.partitions_dropped == () and (result.runs, result.metrics) == (1, 12)
    assert next(name for name, _, _ in ranges(pg_store)) == "metric_point_1"


def test_an_archiving_gc_reads_every_point_out_then_drops_the_range_it_emptied(pg_store, tmp_path):
    run_with_points(pg_store, OLD)
    next_series(pg_store, SIZE + 1)
    run_with_points(pg_store, RECENT)
    with pg_store.engine.begin() as connection:  # which way the range went: rows, then empty
        connection.exec_driver_sql("CREATE TABLE deleted_rows (n int)")
        connection.exec_driver_sql(
            "CREATE FUNCTION count_delete() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO deleted_rows VALUES (1); RETURN OLD; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER counted BEFORE DELETE ON metric_point_1 "
            "FOR EACH ROW EXECUTE FUNCTION count_delete()"
        )

    result = pg_store.maintenance.gc(older_than=HORIZON, archive_dir=tmp_path)

    assert result.metrics == 12 and result.partitions_dropped == ("metric_point_1",)
    assert len(pd.read_parquet(result.archive_path / "metrics-000001.parquet")) == 12
    assert count(pg_store, "deleted_rows") == 12  # read out and deleted row by row first
    assert next(name for name, _, _ in ranges(pg_store)) == f"metric_point_{1 + SIZE}"


def test_the_cli_lists_the_ranges_and_creates_them_ahead(pg_store, pg_scratch_url):
    next_series(pg_store, 2 * SIZE + 5)
    run_with_points(pg_store, RECENT)
    runner = CliRunner()

    listed = runner.invoke(app, ["db", "partitions", "--database-url", pg_scratch_url])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "metric_point_" in line]
    assert [line.split()[1] for line in lines] == [
        "metric_point_1",
        f"metric_point_{1 + SIZE}",
        "metric_point_default",
    ]

    ensured = runner.invoke(app, ["db", "partitions", "--ensure", "--database-url", pg_scratch_url])
    assert ensured.exit_code == 0, ensured.output
    assert "moved 12 point(s) out of DEFAULT" in ensured.output
    assert f"metric_point_{1 + 4 * SIZE}" in ensured.output


def test_on_sqlite_the_cli_says_there_are_no_partitions(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    assert CliRunner().invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    result = CliRunner().invoke(app, ["db", "partitions", "--database-url", url])
    assert result.exit_code == 0 and "no partitions" in result.output


def test_pages_cross_partitions_in_id_order_without_a_gap_or_a_repeat(pg_store):
    from etl_meta.analytics import metrics_page

    run_with_points(pg_store, RECENT)  # series in the first range
    next_series(pg_store, SIZE + 1)
    run_with_points(pg_store, RECENT)  # in the second
    next_series(pg_store, 2 * SIZE + 1)
    run_with_points(pg_store, RECENT)  # beyond every range: DEFAULT
    frame = metrics_frame(pg_store, attempts="all")
    assert len(frame) == 36

    ids, cursor = [], None
    while True:
        page = metrics_page(pg_store, limit=5, cursor=cursor, attempts="all")
        ids += page.frame["metric_id"].tolist()
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == frame["metric_id"].tolist() == sorted(ids)
    assert len(set(ids)) == 36
