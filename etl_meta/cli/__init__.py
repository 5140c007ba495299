"""The ``etl-meta`` command line.

Each command group lives in its own module and registers itself on :data:`app` below.
"""

from __future__ import annotations

import logging

import typer

from etl_meta import __version__

app = typer.Typer(
    name="etl-meta",
    help="The metadata store for ETL pipelines run by Dagster and Airflow.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"etl-meta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what etl-meta does."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from etl_meta.cli import apply, db, jobs, runs

    app.add_typer(db.app, name="db")
    app.add_typer(jobs.app, name="jobs")
    app.add_typer(runs.app, name="runs")
    app.command("apply")(apply.apply)


_register()


def main() -> None:
    """Entry point of the ``etl-meta`` console script."""
    app()
