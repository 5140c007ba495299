"""The migration chain: one head, no drift, real downgrades, stable names, a guarded runtime."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta import (
    MetadataStore,
    SchemaNotInitializedError,
    SchemaOutOfDateError,
    SchemaTooNewError,
)
from etl_meta import schema as schema_mod
from etl_meta.cli import app
from etl_meta.db import create_engine
from etl_meta.models import metadata
from tests.seed import seed_every_table

ETL_TABLES = set(metadata.tables)


@pytest.fixture
def engine(empty_url, settings):
    engine = create_engine(empty_url, settings=settings)
    yield engine
    engine.dispose()


def _snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every etl-meta table that exists, as plain tuples in key order."""
    inspector = sa.inspect(engine)
    present = set(inspector.get_table_names()) & ETL_TABLES
    reflected = sa.MetaData()
    reflected.reflect(engine, only=sorted(present))
    rows = {}
    with engine.connect() as connection:
        for name, table in reflected.tables.items():
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [tuple(r) for r in connection.execute(sa.select(table).order_by(*order))]
    return rows


def test_the_chain_has_exactly_one_head():
    script = schema_mod.script_directory()
    assert len(script.get_heads()) == 1
    # A new migration must move the constant the store's start-up check compares with.
    assert script.get_current_head() == schema_mod.HEAD_REVISION


def test_upgrade_from_empty_matches_the_models_exactly(engine):
    schema_mod.upgrade(engine)
    assert schema_mod.current_revision(engine) == schema_mod.head_revision()
    assert schema_mod.schema_drift(engine) == []
    assert set(sa.inspect(engine).get_table_names()) >= ETL_TABLES


def test_downgrade_to_base_and_back_up_with_data_in_every_table(engine, settings):
    schema_mod.upgrade(engine, settings=settings)
    with MetadataStore(engine=engine, settings=settings) as store:
        seed_every_table(store)
    before = _snapshot(engine)
    empty = sorted(name for name in ETL_TABLES if not before.get(name))
    assert empty == [], f"seed_every_table leaves these tables empty: {empty}"
    seeded = {k: len(v) for k, v in before.items()}

    # Step down one revision at a time; tables that survive a step keep their rows.
    revisions = [r.revision for r in schema_mod.script_directory().walk_revisions()]  # newest first
    for lower in [*revisions[1:], "base"]:
        schema_mod.downgrade(engine, lower, settings=settings)
        after = _snapshot(engine)
        if lower == "0004":
            # 0005 -> 0004 decrypts secrets back to plaintext: same rows, secret values changed.
            assert "'pw'" in repr(after["component"]) and "'pw'" not in repr(before["component"])
            assert {k: len(v) for k, v in after.items()} == {k: len(before[k]) for k in after}
            before = after
            continue
        for name, rows in after.items():
            kept = before.get(name, [])
            width = min((len(r) for r in rows), default=0)
            assert [r[:width] for r in rows] == [r[:width] for r in kept], name
    assert set(sa.inspect(engine).get_table_names()) & ETL_TABLES == set()
    assert schema_mod.current_revision(engine) is None  # alembic keeps its version table, empty

    schema_mod.upgrade(engine)
    assert schema_mod.schema_drift(engine) == []
    with MetadataStore(engine=engine, settings=settings) as store:
        seed_every_table(store)  # the rebuilt schema takes the same data again
    assert {k: len(v) for k, v in _snapshot(engine).items()} == seeded


def test_constraint_and_index_names_are_unique_and_fit_postgresql(engine):
    names = []
    for table in metadata.tables.values():
        names += [c.name for c in table.constraints] + [i.name for i in table.indexes]
    assert None not in names
    assert len(names) == len(set(names))
    assert max(len(n) for n in names) <= 63
    schema_mod.upgrade(engine)
    inspector = sa.inspect(engine)
    reflected = set()
    for table in ETL_TABLES:
        reflected |= {i["name"] for i in inspector.get_indexes(table)}
        reflected |= {u["name"] for u in inspector.get_unique_constraints(table)}
        reflected |= {f["name"] for f in inspector.get_foreign_keys(table) if f["name"]}
    expected = {
        n
        for table in metadata.tables.values()
        for n in [i.name for i in table.indexes]
        + [c.name for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    }
    assert expected <= reflected  # the database kept every name whole (no truncation)


def test_the_store_refuses_an_empty_database_and_creates_nothing(engine, settings):
    with pytest.raises(SchemaNotInitializedError, match="etl-meta db upgrade"):
        MetadataStore(engine=engine, settings=settings)
    assert set(sa.inspect(engine).get_table_names()) & ETL_TABLES == set()


def test_the_store_refuses_a_schema_from_a_newer_etl_meta(engine, settings):
    schema_mod.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE {schema_mod.VERSION_TABLE} SET version_num = 'f00dfeed'")
        )
    with pytest.raises(SchemaTooNewError, match="newer version") as caught:
        MetadataStore(engine=engine, settings=settings)
    assert caught.value.current == "f00dfeed"


def test_the_store_refuses_an_older_schema_and_names_the_fix(engine, settings, monkeypatch):
    schema_mod.upgrade(engine)
    current = schema_mod.head_revision()
    # Pretend this code already has a newer revision than the database.
    monkeypatch.setattr(schema_mod, "head_revision", lambda: "9999_future")
    monkeypatch.setattr(schema_mod, "known_revisions", lambda: {current, "9999_future"})
    with pytest.raises(SchemaOutOfDateError, match="etl-meta db upgrade") as caught:
        MetadataStore(engine=engine, settings=settings)
    assert (caught.value.current, caught.value.expected) == (current, "9999_future")


def test_db_commands_upgrade_report_and_check(empty_url):
    runner = CliRunner()
    result = runner.invoke(app, ["db", "check", "--database-url", empty_url])
    assert result.exit_code == 1 and "db upgrade" in result.output

    result = runner.invoke(app, ["db", "upgrade", "--database-url", empty_url])
    assert result.exit_code == 0, result.output
    assert f"-> {schema_mod.head_revision()}" in result.output

    result = runner.invoke(app, ["db", "current", "--database-url", empty_url])
    assert result.output.count(schema_mod.head_revision()) == 2

    assert runner.invoke(app, ["db", "check", "--database-url", empty_url]).exit_code == 0

    result = runner.invoke(app, ["db", "downgrade", "base", "--yes", "--database-url", empty_url])
    assert result.exit_code == 0 and "-> base" in result.output


def test_db_check_fails_on_a_schema_edited_by_hand(engine, empty_url):
    schema_mod.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE job ADD COLUMN sneaky INTEGER"))
    result = CliRunner().invoke(app, ["db", "check", "--database-url", empty_url])
    assert result.exit_code == 2
    assert "sneaky" in result.output
