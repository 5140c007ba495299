"""``etl-meta db``: create and migrate the store's schema, and check it."""

from __future__ import annotations

from typing import Annotated

import typer

from etl_meta import schema
from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    settings_for,
)
from etl_meta.cli.roles import roles
from etl_meta.db import create_engine, render_url

app = typer.Typer(help="Migrate and check the store's schema.", no_args_is_help=True)


def _engine(database_url: str | None):
    settings = settings_for(database_url)
    return create_engine(settings.resolved_database_url(), settings=settings), settings


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Migrate the schema up to REVISION (default: the newest). Creates it on an empty database."""
    engine, settings = _engine(database_url)
    with handle_errors():
        before = schema.current_revision(engine)
        schema.upgrade(engine, revision, settings=settings)
        after = schema.current_revision(engine)
    engine.dispose()
    if before == after:
        console.print(f"{render_url(engine.url)} is already at {after}", highlight=False)
    else:
        console.print(
            f"upgraded {render_url(engine.url)}: {before or 'empty'} -> {after}", highlight=False
        )


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes everything.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Migrate the schema down to REVISION. Data in removed columns and tables is lost."""
    engine, settings = _engine(database_url)
    with handle_errors():
        before = schema.current_revision(engine)
        schema.downgrade(engine, revision, settings=settings)
        after = schema.current_revision(engine)
    engine.dispose()
    console.print(
        f"downgraded {render_url(engine.url)}: {before or 'empty'} -> {after or 'base'}",
        highlight=False,
    )


@app.command()
def current(database_url: DatabaseUrlOption = None) -> None:
    """Print the schema revision of the database and of this etl-meta."""
    engine, _settings = _engine(database_url)
    with handle_errors():
        status = schema.schema_status(engine)
    engine.dispose()
    console.print(f"database: {render_url(engine.url)}", highlight=False)
    console.print(f"current:  {status.current or 'none (run `etl-meta db upgrade`)'}")
    console.print(f"head:     {status.head}")


@app.command()
def check(database_url: DatabaseUrlOption = None) -> None:
    """Exit non-zero unless the schema is at the head revision and matches the models."""
    engine, _settings = _engine(database_url)
    try:
        with handle_errors():
            schema.check_schema(engine)
            diffs = schema.schema_drift(engine)
    finally:
        engine.dispose()
    if diffs:
        err_console.print(f"[red]drift:[/red] the schema differs from the models ({len(diffs)}):")
        for diff in diffs:
            err_console.print(f"  {diff!r}", markup=False, highlight=False)
        raise typer.Exit(2)
    console.print(f"ok: {render_url(engine.url)} is at {schema.head_revision()} with no drift")


@app.command()
def history() -> None:
    """List the migration chain, newest first."""
    for revision in schema._script().walk_revisions():
        doc = (revision.doc or "").splitlines()[0] if revision.doc else ""
        console.print(f"{revision.revision}  {doc}", highlight=False)


app.command("roles")(roles)
