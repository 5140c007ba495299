"""The ``etl-meta`` command line.

Each command group lives in its own module and registers itself on :data:`app` below.
Integrations add their own groups through the :data:`PLUGIN_GROUP` entry point and build them
from the options, store opening, output and error handling this package exports (``__all__``):
those names are the command line's public boundary; its modules are private to it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from typing import Any

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

#: Entry-point group through which integrations add command groups (``etl-meta dagster …``):
#: ``name = "package.module:typer_app"``. etl_meta never imports its integrations directly.
PLUGIN_GROUP = "etl_meta.cli"


@functools.cache
def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    return {e.name: e for e in importlib.metadata.entry_points(group=PLUGIN_GROUP)}


@functools.cache
def _plugin_command(name: str) -> Any:
    """The command group ``name``'s plugin adds, or ``None`` if its integration is missing."""
    try:
        plugin = _plugins()[name].load()
    except ImportError as exc:  # an optional integration that is not installed
        logging.getLogger(__name__).debug("CLI plugin %s unavailable: %s", name, exc)
        return None
    # Built as a sub-group of a bare app, as add_typer would: without the root's completion
    # options, which typer adds to an app turned into a command on its own.
    host = typer.Typer(add_completion=False)
    host.add_typer(plugin, name=name)
    return typer.main.get_group(host).commands[name]


class _RootGroup(OneLineErrorsGroup):
    """The root group; integrations' groups are loaded when a command line or ``--help`` first
    names them. A plugin module imports this package, so loading plugins while this package is
    imported would find a plugin imported first (``import dagster_defs.cli``) half-initialised.
    """

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        own = super().list_commands(ctx)
        return [*own, *sorted(n for n in _plugins() if n not in own and _plugin_command(n))]

    def get_command(self, ctx: typer.Context, name: str) -> Any:  # type: ignore[override]
        command = super().get_command(ctx, name)
        if command is None and name in _plugins():
            return _plugin_command(name)
        return command


app = typer.Typer(
    name="etl-meta",
    help="The metadata store for ETL pipelines run by Dagster and Airflow.",
    no_args_is_help=True,
    # Every command's errors, plugins' too, end as one `error:` line (docs/cli.md).
    cls=_RootGroup,
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


def _register() -> None:
    from etl_meta.cli import apply, audit, db, gc, jobs, metrics, retention, runs, schema, secrets

    app.add_typer(db.app, name="db")
    app.add_typer(jobs.app, name="jobs")
    app.add_typer(runs.app, name="runs")
    app.add_typer(metrics.app, name="metrics")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(audit.app, name="audit")
    app.add_typer(retention.app, name="retention")
    app.command("apply")(apply.apply)
    app.command("gc")(gc.gc)
    app.command("schema")(schema.schema)


_register()


def main() -> None:
    """Entry point of the ``etl-meta`` console script."""
    app()
