"""``etl-meta db downgrade`` shows what it drops, asks first, and deletes data only with --force."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta import schema as schema_mod
from etl_meta.cli import app
from etl_meta.cli import db as db_cli
from etl_meta.db import create_engine
from etl_meta.downgrades import plan_downgrade
from tests.seed import seed_every_table

REFUSED = db_cli.EXIT_REFUSED


@pytest.fixture
def engine(empty_url, settings) -> Iterator[sa.Engine]:
    """A database of its own at head (never the session's shared one: these tests downgrade)."""
    engine = create_engine(empty_url, settings=settings)
    schema_mod.upgrade(engine, settings=settings)
    yield engine
    engine.dispose()


@pytest.fixture
def downgrade(empty_url):
    """``downgrade("0006", "--yes")``: run ``etl-meta db downgrade`` against the test database."""
    runner = CliRunner()

    def invoke(*args: str, answer: str | None = None):
        return runner.invoke(
            app, ["db", "downgrade", *args, "--database-url", empty_url], input=answer
        )

    return invoke


@pytest.fixture
def seeded(engine, settings) -> sa.Engine:
    with MetadataStore(engine=engine, settings=settings) as store:
        seed_every_table(store)
    return engine


def _rows(engine: sa.Engine) -> dict[str, int]:
    inspector = sa.inspect(engine)
    with engine.connect() as connection:
        return {
            name: connection.execute(
                sa.select(sa.func.count()).select_from(sa.table(name))
            ).scalar_one()
            for name in inspector.get_table_names()
        }


def test_an_empty_store_downgrades_with_yes_and_lists_what_it_drops(engine, downgrade):
    result = downgrade("base", "--yes")

    assert result.exit_code == 0, result.output
    assert "drops table job: 0 rows" in result.stdout
    assert "drops table sync_cursor: 0 rows" in result.stdout
    assert f"{schema_mod.head_revision()} -> base" in result.stdout
    assert schema_mod.current_revision(engine) is None


def test_a_downgrade_that_deletes_data_is_refused_without_force_and_changes_nothing(
    seeded, downgrade
):
    before = _rows(seeded)

    result = downgrade("0006", "--yes")

    assert result.exit_code == REFUSED, result.output
    assert "drops table sync_cursor: 1 row\n" in result.stdout
    assert result.stderr.count("\n") == 1 and "--force" in result.stderr
    assert schema_mod.current_revision(seeded) == schema_mod.head_revision()
    assert _rows(seeded) == before


def test_with_yes_and_force_a_downgrade_deletes_the_data_it_listed(seeded, downgrade):
    result = downgrade("0006", "--yes", "--force")

    assert result.exit_code == 0, result.output
    assert "drops table sync_cursor: 1 row" in result.stdout
    assert schema_mod.current_revision(seeded) == "0006"
    assert "sync_cursor" not in sa.inspect(seeded).get_table_names()


def test_the_values_of_a_dropped_column_are_counted(seeded, downgrade):
    # The 0006 -> 0005 round trip that erased db_login: now listed with its non-NULL values
    # (PostgreSQL's trigger fills it; SQLite has no logins, so it stays NULL there).
    with seeded.connect() as connection:
        logins = connection.execute(sa.text("SELECT count(db_login) FROM audit_event")).scalar()

    result = downgrade("0005", "--yes")

    assert f"drops column audit_event.db_login: {logins} value" in result.stdout
    assert result.exit_code == REFUSED  # sync_cursor's row is lost too
    assert schema_mod.current_revision(seeded) == schema_mod.head_revision()


def test_without_a_terminal_and_without_yes_the_downgrade_is_refused(engine, downgrade):
    result = downgrade("0006")

    assert result.exit_code == REFUSED, result.output
    assert result.stderr.count("\n") == 1 and "--yes" in result.stderr
    assert schema_mod.current_revision(engine) == schema_mod.head_revision()


@pytest.mark.parametrize(("answer", "revision"), [("y\n", "0006"), ("n\n", None)])
def test_at_a_terminal_the_downgrade_asks_first(engine, downgrade, monkeypatch, answer, revision):
    monkeypatch.setattr(db_cli, "_interactive", lambda: True)

    result = downgrade("0006", answer=answer)

    assert "Downgrade?" in result.stdout
    assert result.exit_code == (0 if revision else REFUSED), result.output
    assert schema_mod.current_revision(engine) == (revision or schema_mod.head_revision())


def test_planning_a_downgrade_changes_nothing(seeded, settings):
    before = _rows(seeded)

    plan = plan_downgrade(seeded, "base", settings=settings)

    assert plan.current == schema_mod.head_revision() and plan.target is None
    assert plan.loses_data
    # PostgreSQL's partitions of metric_point count as their parent, and the list of them
    # (metric_partition) is not data.
    partitions = {name for name in before if name.startswith("metric_point_")}
    not_data = {schema_mod.VERSION_TABLE, "metric_partition", *partitions}
    assert {drop.table for drop in plan.drops if drop.column is None} == set(before) - not_data
    assert "metric_point" in {drop.table for drop in plan.drops}
    assert schema_mod.current_revision(seeded) == schema_mod.head_revision()
    assert _rows(seeded) == before
