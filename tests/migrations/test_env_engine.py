"""migrations/env.py takes an Engine as well as a Connection (issue #18, item 6).

etl-meta's own commands put an open Connection in ``config.attributes["connection"]``; alembic
test tools (pytest-alembic) put an Engine there. With an Engine, env.py connects, migrates in a
transaction of its own and commits; the Engine stays the caller's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from etl_meta import schema
from etl_meta.config import normalize_database_url
from etl_meta.db import create_engine
from etl_meta.models import metadata
from tests.backends import isolated_settings

ETL_TABLES = set(metadata.tables)


def _etl_meta_engine(url: str, tmp_path: Path) -> sa.Engine:
    return create_engine(url, settings=isolated_settings(tmp_path))


def _plain_engine(url: str, _tmp_path: Path) -> sa.Engine:
    # What an alembic test tool builds from a URL: SQLAlchemy's defaults, no etl-meta events.
    return sa.create_engine(normalize_database_url(url))


@pytest.fixture(params=[_etl_meta_engine, _plain_engine], ids=["etl-meta-engine", "plain-engine"])
def engine(request: pytest.FixtureRequest, empty_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = request.param(empty_url, tmp_path)
    yield engine
    engine.dispose()


def _config_with(engine: sa.Engine) -> Config:
    config = schema.alembic_config()
    config.attributes["connection"] = engine
    return config


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) & ETL_TABLES


def test_upgrade_and_downgrade_through_alembic_with_an_engine_in_the_config(
    engine: sa.Engine,
) -> None:
    config = _config_with(engine)

    command.upgrade(config, "head")
    assert schema.current_revision(engine) == schema.head_revision()
    assert _tables(engine) == ETL_TABLES
    assert schema.schema_drift(engine) == []

    command.downgrade(config, "base")
    assert schema.current_revision(engine) is None
    assert _tables(engine) == set()


def test_stepping_through_every_revision_with_an_engine(engine: sa.Engine) -> None:
    config = _config_with(engine)
    # Oldest first.
    revisions = [r.revision for r in schema.script_directory().walk_revisions()][::-1]
    for revision in revisions:
        command.upgrade(config, revision)
        assert schema.current_revision(engine) == revision
    for lower in [*revisions[-2::-1], "base"]:
        command.downgrade(config, lower)
        assert schema.current_revision(engine) == (None if lower == "base" else lower)


def test_the_engine_is_left_usable_with_sqlite_foreign_keys_as_they_were(
    engine: sa.Engine,
) -> None:
    def foreign_keys() -> int:
        with engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one()

    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite pragma")
    before = foreign_keys()
    command.upgrade(_config_with(engine), "head")
    # env.py switches them off to migrate: the pooled connection must not come back so.
    assert foreign_keys() == before


def test_a_connection_in_the_config_still_works(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        config = schema.alembic_config(connection)
        command.upgrade(config, "head")
        connection.commit()
    assert schema.current_revision(engine) == schema.head_revision()
