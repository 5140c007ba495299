"""``etl-meta db``: create and migrate the store's schema, and check it."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from sqlalchemy.engine import Engine

from etl_meta import downgrades, schema
from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    settings_for,
)
from etl_meta.cli.partitions import partitions
from etl_meta.cli.roles import roles
from etl_meta.db import create_engine, render_url

app = typer.Typer(help="Migrate and check the store's schema.", no_args_is_help=True)


def _engine(database_url: str | None):
    settings = settings_for(database_url)
    return create_engine(settings.resolved_database_url(), settings=settings), settings


def _refuse_unknown_revision(engine: Engine, current: str | None) -> None:
    # A schema migrated by a newer etl-meta: alembic would only say "Can't locate revision
    # identified by …"; check_schema names the cause and the fix (SchemaTooNewError).
    if current is not None and current not in schema.known_revisions():
        schema.check_schema(engine)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Migrate the schema up to REVISION (default: the newest). Creates it on an empty database."""
    engine, settings = _engine(database_url)
    with handle_errors():
        before = schema.current_revision(engine)
        _refuse_unknown_revision(engine, before)
        # Revisions read under the migration lock: a run that waited for a concurrent one
        # finds the schema migrated and says "already at", not "upgraded".
        migration = schema.upgrade(engine, revision, settings=settings)
        before, after = migration.before, migration.after
    engine.dispose()
    if before == after:
        console.print(f"{render_url(engine.url)} is already at {after}", highlight=False)
    else:
        console.print(
            f"upgraded {render_url(engine.url)}: {before or 'empty'} -> {after}", highlight=False
        )


#: Exit status of a downgrade refused before it changed anything: not confirmed (no terminal
#: and no --yes, or the answer was no), or it would delete data and --force was not given.
EXIT_REFUSED = 2


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes everything.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Downgrade without asking (for scripts).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Downgrade although it deletes data.")
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Migrate the schema down to REVISION, after showing what it drops and asking.

    A downgrade that deletes data (rows of dropped tables, values of dropped columns) also needs
    --force. Without a terminal to ask on, --yes confirms. Exit status 2: refused, nothing
    changed.
    """
    engine, settings = _engine(database_url)
    try:
        with handle_errors():
            _refuse_unknown_revision(engine, schema.current_revision(engine))
            plan = downgrades.plan_downgrade(engine, revision, settings=settings)
        if plan.current == plan.target:
            url, at = render_url(engine.url), plan.current or "base"
            console.print(f"{url} is already at {at}", highlight=False)
            return
        _show_plan(render_url(engine.url), plan)
        _confirm_downgrade(plan, yes=yes, force=force)
        with handle_errors():
            # No lock is held while asking: refuse if the plan went stale meanwhile.
            migration = schema.downgrade(
                engine, revision, settings=settings, expect_current=plan.current
            )
    finally:
        engine.dispose()
    console.print(
        f"downgraded {render_url(engine.url)}: {migration.before or 'empty'} -> "
        f"{migration.after or 'base'}",
        highlight=False,
    )


def _show_plan(url: str, plan: downgrades.DowngradePlan) -> None:
    console.print(f"downgrade {url}: {plan.current} -> {plan.target or 'base'}", highlight=False)
    if not plan.drops:
        console.print("  drops no table or column")
    for drop in plan.drops:
        if drop.column is None:
            what, unit = f"table {drop.table}", "row"
        else:
            what, unit = f"column {drop.table}.{drop.column}", "value"
        plural = "" if drop.count == 1 else "s"
        console.print(f"  drops {what}: {drop.count} {unit}{plural}", highlight=False)


def _confirm_downgrade(plan: downgrades.DowngradePlan, *, yes: bool, force: bool) -> None:
    if plan.loses_data and not force:
        _refuse("this downgrade deletes the data listed above; pass --force to accept the loss")
    if yes:
        return
    if not _interactive():
        _refuse("no terminal to confirm on; pass --yes to downgrade")
    if not typer.confirm("Downgrade?", default=False):
        _refuse("not confirmed")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _refuse(reason: str) -> NoReturn:
    err_console.print(
        f"[red]error:[/red] downgrade refused, nothing changed: {reason}", highlight=False
    )
    raise typer.Exit(EXIT_REFUSED)


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
    for revision in schema.script_directory().walk_revisions():
        # alembic's ``doc`` is the docstring's first paragraph, the summary; its first line
        # alone cut 0001's mid-sentence. Joined into one line, it reads whole.
        doc = " ".join((revision.doc or "").split())
        console.print(f"{revision.revision}  {doc}", highlight=False, markup=False)


app.command("roles")(roles)
app.command("partitions")(partitions)
