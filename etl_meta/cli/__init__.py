"""The ``etl-meta`` command line.

Each command group lives in its own module and registers itself on :data:`app` below.
Integrations add their own groups through the :data:`PLUGIN_GROUP` entry point and build them
from the options, store opening, output and error handling this package exports (``__all__``):
those names are the command line's public boundary; its modules are private to it.
"""

from __future__ import annotations

import importlib.metadata
import logging

import typer

from etl_meta import __version__
from etl_meta.cli._common import (
    DatabaseUrlOption,
    FormatOption,
    OneLineErrorsGroup,
    OutputFormat,
    console,
    err_console,
    handle_errors,
    open_store,
    parse_since,
    print_json,
    print_table,
    require_existing_store,
    settings_for,
    when,
)

__all__ = [
    "PLUGIN_GROUP",
    "DatabaseUrlOption",
    "FormatOption",
    "OutputFormat",
    "app",
    "console",
    "err_console",
    "handle_errors",
    "main",
    "open_store",
    "parse_since",
    "print_json",
    "print_table",
    "require_existing_store",
    "settings_for",
    "when",
]

app = typer.Typer(
    name="etl-meta",
    help="The metadata store for ETL pipelines run by Dagster and Airflow.",
    no_args_is_help=True,
    # Every command's errors, plugins' too, end as one `error:` line (docs/cli.md).
    cls=OneLineErrorsGroup,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"etl-meta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what etl-meta does."),
    timings: bool = typer.Option(
        False,
        "--timings",
        help="When the command ends, print how many statements it ran and how long they took.",
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if timings:
        ctx.call_on_close(_print_timings)


def _print_timings() -> None:
    from etl_meta.query_timing import format_query_stats, query_stats

    # stderr: the command's own output (CSV, JSON) stays parseable.
    typer.echo("store statements:\n" + format_query_stats(query_stats()), err=True)


#: Entry-point group through which integrations add command groups (``etl-meta dagster …``):
#: ``name = "package.module:typer_app"``. etl_meta never imports its integrations directly.
PLUGIN_GROUP = "etl_meta.cli"


def _register() -> None:
    from etl_meta.cli import apply, audit, db, gc, jobs, metrics, runs, schema, secrets

    app.add_typer(db.app, name="db")
    app.add_typer(jobs.app, name="jobs")
    app.add_typer(runs.app, name="runs")
    app.add_typer(metrics.app, name="metrics")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(audit.app, name="audit")
    app.command("apply")(apply.apply)
    app.command("gc")(gc.gc)
    app.command("schema")(schema.schema)
    for entry_point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        # Plugin modules keep heavy imports (Dagster, Airflow) inside their commands, so
        # loading them here costs nothing until one of their commands runs.
        try:
            app.add_typer(entry_point.load(), name=entry_point.name)
        except ImportError as exc:  # an optional integration that is not installed
            logging.getLogger(__name__).debug("CLI plugin %s unavailable: %s", entry_point, exc)


_register()


def main() -> None:
    """Entry point of the ``etl-meta`` console script."""
    app()
