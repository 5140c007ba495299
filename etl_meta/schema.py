"""Schema versioning: alembic migrations, the start-up check and drift detection.

Migrations are the only way etl-meta's schema is created or changed, in tests too. The runtime
never migrates on its own: :func:`check_schema` refuses a database that is behind or ahead of this
code and names the command that fixes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from etl_meta.errors import (
    SchemaDriftError,
    SchemaError,
    SchemaNotInitializedError,
    SchemaOutOfDateError,
    SchemaTooNewError,
)
from etl_meta.migration_env import lock_for_migration, sqlite_driver_connection

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from etl_meta.config import Settings

# alembic is imported where it is used, not here: every command imports this module, and
# `etl-meta --help` (or any command that never migrates) should not pay for loading alembic.

log = logging.getLogger(__name__)

#: etl-meta's own version table, so it can share a database with other alembic users.
VERSION_TABLE = "etl_meta_schema_version"


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed wheel, or the source checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("etl-meta's migration scripts are missing from this installation")


def alembic_config(
    connection: Connection | None = None, *, settings: Settings | None = None
) -> Config:
    """An alembic ``Config`` for etl-meta's chain, bound to ``connection`` when given.

    ``settings`` are what the migrations read (``env.py``); without them, the environment's.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    if settings is not None:
        config.attributes["settings"] = settings
    return config


def migration_context_options() -> dict[str, Any]:
    """Options shared by ``env.py`` and the drift check, so both compare the same way."""
    return {
        "version_table": VERSION_TABLE,
        "render_as_batch": True,
        "compare_type": True,
        "compare_server_default": False,
        "include_object": _include_object,
        # SQLite's DDL is transactional too (etl-meta's engine issues BEGIN itself). Without
        # this alembic commits each SQLite revision on its own, so a multi-step migration that
        # fails half-way (a downgrade refusing without the key) would leave the earlier steps
        # applied; with it, every backend migrates all-or-nothing.
        "transactional_ddl": True,
        "render_item": _render_item,
    }


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Autogenerate renders a type from outside SQLAlchemy with its module path
    # (``sqlmodel.sql.sqltypes.AutoString``, ``etl_meta.types.UTCDateTime``) but imports nothing,
    # so the new revision failed with a NameError. Import the module; let alembic render as usual.
    if type_ == "type" and autogen_context.imports is not None:
        module = type(obj).__module__
        if not module.startswith("sqlalchemy"):
            autogen_context.imports.add(f"import {module}")
    return False


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, _other: Any) -> bool:
    # Only etl-meta's own tables: the database may be shared with other applications.
    if type_ == "table":
        from etl_meta.models import metadata

        return name in metadata.tables or not reflected
    # SQLite only (migration 0011): where the metric point writer finds the next id.
    return not (type_ == "index" and reflected and name == "ix_metric_point_id")


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    """The migration chain's scripts (read once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


#: The newest revision in ``migrations/versions``. Every store open compares the database to it,
#: so it is a constant rather than read from the scripts: parsing them loads alembic and costs a
#: command a third of a second. A test fails when a migration is added without moving it.
HEAD_REVISION = "0012"


def head_revision() -> str:
    """The newest revision this code knows."""
    return HEAD_REVISION


def known_revisions() -> set[str]:
    """Every revision in this code's chain."""
    return {rev.revision for rev in script_directory().walk_revisions()}


def current_revision(engine_or_connection: Engine | Connection) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with _connection(engine_or_connection) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        heads = context.get_current_heads()
    if len(heads) > 1:
        raise RuntimeError(f"the database has several schema heads: {heads}")
    return heads[0] if heads else None


@dataclass(frozen=True)
class SchemaStatus:
    """Where the database stands against this code."""

    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def schema_status(engine: Engine | Connection) -> SchemaStatus:
    """The database's revision next to this code's head."""
    return SchemaStatus(current=current_revision(engine), head=head_revision())


def check_schema(engine: Engine | Connection) -> None:
    """Raise unless the database is exactly at this code's head revision.

    Every store open calls it, so the usual answer (at head) costs one query: the version table
    read directly. Alembic's own look starts with a catalog query (``has_table``), slow on
    PostgreSQL for a new engine; it runs only when the fast read does not find the head, to
    name what is wrong.
    """
    with _connection(engine) as connection:
        if _at_head(connection):
            return
    status = schema_status(engine)
    if status.is_current:
        return
    if status.current is None:
        raise SchemaNotInitializedError(
            "the database has no etl-meta schema yet: run `etl-meta db upgrade`",
            current=None,
            expected=status.head,
        )
    if status.current in known_revisions():
        raise SchemaOutOfDateError(
            f"the database schema is at {status.current}, older than this etl-meta "
            f"({status.head}): run `etl-meta db upgrade`",
            current=status.current,
            expected=status.head,
        )
    raise SchemaTooNewError(
        f"the database schema is at {status.current}, which this etl-meta does not know: it was "
        f"migrated by a newer version. Upgrade etl-meta, or run `etl-meta db downgrade "
        f"{status.head}` with the newer version",
        current=status.current,
        expected=status.head,
    )


_READ_VERSIONS = sa.select(sa.column("version_num", sa.String)).select_from(sa.table(VERSION_TABLE))


def _at_head(connection: Connection) -> bool:
    """Whether the version table holds exactly this code's head (``False`` if it is missing)."""
    # A caller's transaction (``etl-meta db roles`` checks inside its own) must survive the
    # missing-table error: PostgreSQL aborts a transaction on any error, so read in a savepoint.
    savepoint = connection.begin_nested() if connection.in_transaction() else None
    try:
        versions = connection.execute(_READ_VERSIONS).all()
    except sa.exc.DBAPIError as exc:
        if savepoint is not None:
            savepoint.rollback()
        else:
            connection.rollback()
        if _is_missing_table(exc):
            return False  # never migrated: the full check says so
        raise
    if savepoint is not None:
        savepoint.commit()
    return [row[0] for row in versions] == [head_revision()]


def _is_missing_table(exc: sa.exc.DBAPIError) -> bool:
    # PostgreSQL's undefined_table, SQLite's "no such table"; any other error (a lost
    # connection, a timeout) is the caller's to handle, never taken for an empty database.
    driver_error = exc.orig
    return getattr(driver_error, "sqlstate", None) == "42P01" or str(driver_error).startswith(
        "no such table"
    )


def schema_drift(engine: Engine | Connection) -> list[Any]:
    """Differences between the live schema and the models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from etl_meta.models import metadata

    with _connection(engine) as connection:
        context = MigrationContext.configure(connection, opts=migration_context_options())
        return list(compare_metadata(context, metadata))


def check_no_drift(engine: Engine | Connection) -> None:
    """Raise :class:`SchemaDriftError` when the live schema differs from the models."""
    diffs = schema_drift(engine)
    if diffs:
        revision = current_revision(engine)
        raise SchemaDriftError(
            f"the schema differs from etl-meta's models in {len(diffs)} place(s): {diffs!r}",
            current=revision,
            expected=revision,
        )


@dataclass(frozen=True)
class Migration:
    """The revisions a migration found and left, both read under the migration lock."""

    before: str | None
    after: str | None


def upgrade(
    engine: Engine, revision: str = "head", *, settings: Settings | None = None
) -> Migration:
    """Migrate the database up to ``revision`` (default: the newest).

    Holds the migration lock (:func:`lock_for_migration`): run twice at once, the second call
    waits for the first and then finds nothing to do. ``settings`` supply the secret keys data
    migrations encrypt with (default: the environment).
    """
    from alembic import command

    return _run_alembic(engine, lambda config: command.upgrade(config, revision), settings)


def downgrade(
    engine: Engine,
    revision: str,
    *,
    settings: Settings | None = None,
    expect_current: str | None = None,
) -> Migration:
    """Migrate the database down to ``revision`` (``base`` removes etl-meta's schema).

    Data in the tables and columns it drops is lost: :func:`plan_downgrade` says how much.
    ``expect_current``: refuse, changing nothing, unless the database is still at this revision
    (what the plan was made at) once the lock is held.
    """
    from alembic import command

    return _run_alembic(
        engine,
        lambda config: command.downgrade(config, revision),
        settings,
        expect_current=expect_current,
    )


def migration_settings(config: Config) -> Settings:
    """The settings a migration runs with: those passed to :func:`upgrade`, else the environment."""
    settings = config.attributes.get("settings")
    if settings is None:
        from etl_meta.config import Settings

        settings = Settings()
    return settings


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction holding the migration lock; rolled back unless committed.

    On SQLite, foreign keys are off inside (batch mode rebuilds tables) and checked on the way out.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds SQLite tables (copy, drop, rename); with foreign keys on, the
            # drop would cascade into child rows. The pragma only works outside a transaction,
            # so it goes straight to the driver before the migration begins one.
            sqlite_driver_connection(connection).execute("PRAGMA foreign_keys=OFF")
        try:
            lock_for_migration(connection)
            yield connection
        finally:
            if connection.in_transaction():
                connection.rollback()  # a failure: the pragmas below need no open transaction
            if sqlite:
                raw = sqlite_driver_connection(connection)
                violations = raw.execute("PRAGMA foreign_key_check").fetchall()
                raw.execute("PRAGMA foreign_keys=ON")
                if violations:
                    raise RuntimeError(f"migration left broken foreign keys: {violations[:5]}")


def _run_alembic(
    engine: Engine,
    action: Callable[[Config], None],
    settings: Settings | None = None,
    *,
    expect_current: str | None = None,
) -> Migration:
    with migrating(engine) as connection:
        before = current_revision(connection)
        if expect_current is not None and before != expect_current:
            raise SchemaError(
                f"the database schema moved from {expect_current} to {before} in the meantime: "
                "nothing changed, look again",
                current=before,
                expected=expect_current,
            )
        action(alembic_config(connection, settings=settings))
        after = current_revision(connection)
        connection.commit()
    return Migration(before=before, after=after)


@contextmanager
def _connection(engine_or_connection: Engine | Connection) -> Iterator[Connection]:
    if isinstance(engine_or_connection, Connection):
        yield engine_or_connection
        return
    from etl_meta.db import readonly

    engine = engine_or_connection
    if engine.dialect.name == "sqlite":
        engine = readonly(engine)
    with engine.connect() as connection:
        yield connection


def table_exists(engine: Engine, name: str) -> bool:
    """Whether ``name`` exists in the database (used by tests and ``db current``)."""
    return sa.inspect(engine).has_table(name)
