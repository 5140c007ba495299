"""What a downgrade would drop, before it does: tables, columns and the data they hold.

``etl-meta db downgrade`` shows this plan and asks before going on; a plan that loses data needs
``--force`` as well (docs/cli.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from etl_meta.config import Settings
from etl_meta.schema import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    migrating,
    script_directory,
)


@dataclass(frozen=True)
class Drop:
    """A table (``column`` is ``None``) or a column a downgrade drops, and the data it holds."""

    table: str
    column: str | None
    count: int  # rows of the table, or non-NULL values of the column


@dataclass(frozen=True)
class DowngradePlan:
    """What a downgrade would do: from and to which revision, and what it would drop."""

    current: str | None
    target: str | None
    drops: tuple[Drop, ...]

    @property
    def loses_data(self) -> bool:
        """Whether anything dropped holds a row or a non-NULL value."""
        return any(drop.count for drop in self.drops)


def plan_downgrade(
    engine: Engine, revision: str, *, settings: Settings | None = None
) -> DowngradePlan:
    """Run the downgrade in a transaction that is rolled back, and report what it dropped.

    Comparing the live schema before and after catches every drop of every revision, those
    written later included, with nothing for a migration author to declare and keep in sync.
    The rows and values are counted before the drops (in a savepoint), and only for what is
    dropped. A renamed column shows as dropped: the plan errs on the side of caution.
    """
    from alembic import command  # here, not at the top: see etl_meta.schema

    with migrating(engine) as connection:
        current = current_revision(connection)
        before = _table_columns(connection)
        savepoint = connection.begin_nested()
        command.downgrade(alembic_config(connection, settings=settings), revision)
        target = current_revision(connection)
        after = _table_columns(connection)
        savepoint.rollback()
        moved, bookkeeping = _moved_tables(current, target)
        drops: list[Drop] = []
        for table, columns in sorted(before.items()):
            if moved.get(table) in after or table in bookkeeping:
                continue  # the downgrade carried its rows elsewhere, or they were not data
            if table not in after:
                count = sa.select(sa.func.count()).select_from(sa.table(table))
                drops.append(Drop(table, None, connection.execute(count).scalar_one()))
                continue
            for column in sorted(columns - after[table]):
                values = sa.select(sa.func.count(sa.column(column))).select_from(sa.table(table))
                drops.append(Drop(table, column, connection.execute(values).scalar_one()))
        connection.rollback()
    return DowngradePlan(current=current, target=target, drops=tuple(drops))


def _moved_tables(current: str | None, target: str | None) -> tuple[dict[str, str], set[str]]:
    """What the revisions walked down declare: ``{dropped table: table its rows move to}`` and
    the tables that describe the schema rather than hold data.

    A revision that changes how data is stored (0011: ``metric_point`` and its series back into
    ``metric``) drops tables whose rows its downgrade has copied: ``DOWNGRADE_MOVES`` in the
    revision says so; a move counts only while the destination survives the whole downgrade.
    ``BOOKKEEPING_TABLES`` (0011: ``metric_partition``, the list of partitions) lose nothing.
    """
    moved: dict[str, str] = {}
    bookkeeping: set[str] = set()
    if current is None:
        return moved, bookkeeping
    for script in script_directory().iterate_revisions(current, target or "base"):
        if script.revision != target:
            moved.update(getattr(script.module, "DOWNGRADE_MOVES", {}))
            bookkeeping.update(getattr(script.module, "BOOKKEEPING_TABLES", ()))
    return moved, bookkeeping


def _table_columns(connection: Connection) -> dict[str, set[str]]:
    inspector = sa.inspect(connection)
    partitions: set[str] = set()
    if connection.dialect.name == "postgresql":
        # A partition's rows are its parent's: counted there, never twice.
        partitions = set(
            connection.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relispartition "
                    "AND relnamespace = current_schema()::regnamespace"
                )
            ).scalars()
        )
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != VERSION_TABLE and table not in partitions
    }
