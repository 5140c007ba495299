"""``etl-meta schema [-o FILE]``: the JSON Schema of a definitions file, for editors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from etl_meta.cli._common import console, err_console


def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the schema to FILE instead of printing it.",
            dir_okay=False,
        ),
    ] = None,
    builtin_only: Annotated[
        bool,
        typer.Option(
            "--builtin-only",
            help="Only etl-meta's own component types: no plugins, no worker-only types "
            "(the same schema on every machine, as in examples/definitions.schema.json).",
        ),
    ] = False,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a definitions file.

    Editors that use yaml-language-server (VS Code's YAML extension and others) then complete,
    explain and check definitions files as you type, each component's configuration against its
    type. The schema covers the component types installed here and those declared in
    ETL_META_WORKER_COMPONENT_TYPES; regenerate it after installing a plugin.
    """
    # Imported here: building the schema loads the spec models and every component type.
    from etl_meta.definitions.json_schema import definitions_json_schema

    schema = definitions_json_schema(builtin_only=builtin_only)
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err_console.print(
            f"error: cannot write {output}: {exc.strerror or type(exc).__name__}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1) from None
    console.print(f"wrote {output}", highlight=False, markup=False, soft_wrap=True)
