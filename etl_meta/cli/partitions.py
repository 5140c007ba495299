"""``etl-meta db partitions``: the PostgreSQL partitions of metric points, and their upkeep."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from etl_meta import schema
from etl_meta.cli._common import DatabaseUrlOption, console, handle_errors, settings_for
from etl_meta.db import create_engine, render_url
from etl_meta.repository import partitions as repo


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1024:
            return f"{count:,.0f} {unit}"
        count //= 1024
    return f"{count:,} TB"


def partitions(
    ensure: Annotated[
        bool,
        typer.Option(
            "--ensure",
            help="First create the partitions ahead of the writers (as gc does) and move into "
            "them the points the DEFAULT partition caught.",
        ),
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List the partitions of metric points (PostgreSQL): series range, points, size."""
    settings = settings_for(database_url)
    engine = create_engine(settings.resolved_database_url(), settings=settings)
    try:
        with handle_errors():
            schema.check_schema(engine)
            if not repo.partitioned(engine):
                console.print(
                    f"{render_url(engine.url)} is SQLite: its points are one table, "
                    "with no partitions",
                    highlight=False,
                )
                return
            if ensure:
                work = repo.ensure_ahead(engine)
                created = ", ".join(work.created) or "none"
                console.print(
                    f"created: {created}; moved {work.moved_points:,} point(s) out of DEFAULT",
                    highlight=False,
                )
                if work.skipped:
                    console.print(f"stopped early: {work.skipped}", highlight=False)
            with engine.connect() as connection:
                rows = repo.sizes(connection)
    finally:
        engine.dispose()
    table = Table("partition", "series from", "series to", "≈ points", "size")
    for row in rows:
        table.add_row(
            row.name,
            "DEFAULT" if row.low is None else f"{row.low:,}",
            "" if row.high is None else f"{row.high:,}",
            "?" if row.points is None else f"{row.points:,}",
            _size(row.bytes),
        )
    console.print(table)
