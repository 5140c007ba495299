"""``etl-meta secrets …``: create keys and re-encrypt stored secrets under the newest one."""

from __future__ import annotations

from typing import Annotated

import typer

from etl_meta.cli._common import DatabaseUrlOption, console, err_console, handle_errors, open_store
from etl_meta.cli._common import settings_for as _settings_for
from etl_meta.secrets import KEYS_ENV, generate_key, init_key_file, load_keys
from etl_meta.store.secrets import MAX_BATCH_SIZE

app = typer.Typer(
    help="Encryption keys for secrets stored in configuration (docs/security.md).",
    no_args_is_help=True,
)


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a new random key (put it first in ETL_META_SECRET_KEYS, comma-separated)."""
    typer.echo(generate_key())


@app.command("init")
def init() -> None:
    """Make sure a key is configured: create the local key file (0600) if none is.

    Does nothing when ETL_META_SECRET_KEYS is set. Otherwise creates the key file
    (ETL_META_SECRET_KEY_FILE, default $ETL_META_HOME/secret.key) unless it exists, and prints
    its path. Back the file up: secrets stored with it cannot be read without it.
    """
    settings = _settings_for(None)
    with handle_errors():
        if settings.secret_keys is not None and settings.secret_keys.get_secret_value().strip():
            load_keys(settings)  # checks them
            console.print(f"secret keys come from {KEYS_ENV}; no key file needed")
            return
        path = settings.resolved_secret_key_file
        if init_key_file(path):
            console.print(
                f"created secret key file {path} (mode 0600; back it up)", highlight=False
            )
        else:
            load_keys(settings)  # checks the existing file
            console.print(f"using existing secret key file {path}", highlight=False)


@app.command()
def rotate(
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_BATCH_SIZE,
            help="Rows per transaction (and audit event).",
        ),
    ] = 500,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Re-encrypt every stored secret under the newest key (the first in ETL_META_SECRET_KEYS).

    Current configurations, every configuration version and run request run configs, in
    batches of one transaction each. Safe to interrupt and run again. When it reports success,
    the older keys can be removed.
    """
    store = open_store(database_url)
    try:
        with handle_errors():

            def report(table: str, rows: int) -> None:
                err_console.print(f"  {table}: re-encrypted {rows} row(s)", highlight=False)

            result = store.secrets.rotate(batch_size=batch_size, progress=report)
    finally:
        store.close()
    if result.total == 0:
        console.print("every stored secret is already under the newest key", highlight=False)
        return
    per_table = ", ".join(f"{name} {rows}" for name, rows in result.rows.items())
    console.print(
        f"re-encrypted {result.total} row(s) in {result.batches} batch(es): {per_table}; "
        "older keys can now be removed",
        highlight=False,
    )
