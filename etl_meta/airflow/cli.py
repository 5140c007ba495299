"""``etl-meta airflow``: publish stored jobs to an Airflow dags folder, and keep it tidy.

Plugged into ``etl-meta`` through the ``etl_meta.cli`` entry point. None of these commands
imports Airflow: exporting is writing files, the status check only compares revisions, and
``reconcile`` talks to Airflow's REST API over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from etl_meta.cli import (
    DatabaseUrlOption,
    FormatOption,
    OutputFormat,
    console,
    err_console,
    handle_errors,
    open_store,
    parse_since,
    print_json,
    settings_for,
)
from etl_meta.extras import require_extra

app = typer.Typer(help="Run stored jobs as Airflow DAGs.", no_args_is_help=True)

DagsFolderOption = Annotated[
    Path,
    typer.Option(
        "--dags-folder",
        envvar="AIRFLOW__CORE__DAGS_FOLDER",
        help="Airflow's dags folder (default: AIRFLOW__CORE__DAGS_FOLDER).",
        show_envvar=True,
        file_okay=False,
    ),
]


@app.command()
def export(
    dags_folder: DagsFolderOption,
    retry_delay: Annotated[
        float,
        typer.Option("--retry-delay", min=0, help="Seconds between a failed try and the next one."),
    ] = 30.0,
    reconcile_every: Annotated[
        float,
        typer.Option(
            "--reconcile-every",
            min=0,
            metavar="MINUTES",
            help="Interval of the etl_meta_reconcile maintenance DAG (0: no maintenance DAG).",
        ),
    ] = 5.0,
    retention_schedule: Annotated[
        str | None,
        typer.Option(
            "--retention-schedule",
            metavar="CRON|off",
            help=(
                "Cron (UTC) of the etl_meta_retention DAG, created paused (default: "
                "ETL_META_RETENTION_SCHEDULE, '0 3 * * *'); 'off': no retention DAG."
            ),
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Write the store's jobs into DAGS_FOLDER: etl_meta_catalog.json, etl_meta_dags.py and the
    maintenance DAGs etl_meta_reconcile (etl_meta_maintenance.py) and etl_meta_retention
    (etl_meta_retention.py)."""
    from etl_meta.airflow.export import export_dags

    with open_store(database_url) as store, handle_errors():
        schedule = retention_schedule or store.settings.retention_schedule
        result = export_dags(
            store,
            dags_folder,
            retry_delay_seconds=retry_delay,
            reconcile_minutes=reconcile_every,
            retention_schedule=None if schedule.strip().lower() == "off" else schedule,
        )
    if output is OutputFormat.json:
        print_json(
            {
                "catalog": str(result.catalog_path),
                "dag_file": str(result.dag_file),
                "maintenance_file": str(result.maintenance_file)
                if result.maintenance_file
                else None,
                "retention_file": str(result.retention_file) if result.retention_file else None,
                "catalog_revision": result.revision,
                "dags": list(result.jobs),
                "jobs_not_exported": result.problems,
            }
        )
    else:
        console.print(
            f"exported {len(result.jobs)} DAG(s) at catalog revision {result.revision} to "
            f"{result.dag_file.parent}: {', '.join(result.jobs) or '-'}",
            highlight=False,
        )
    for job, problem in result.problems.items():
        err_console.print(f"[yellow]not a DAG:[/yellow] {job}: {problem}", highlight=False)


@app.command()
def status(
    dags_folder: DagsFolderOption,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Compare the exported catalog in DAGS_FOLDER with the store (exit 1 when stale)."""
    from etl_meta.airflow.export import CATALOG_FILE, job_problem, read_catalog
    from etl_meta.catalog import catalog_revision

    path = dags_folder / CATALOG_FILE
    with open_store(database_url) as store, handle_errors():
        current = catalog_revision(store)
    exported = read_catalog(path) if path.exists() else None
    report = {
        "store_catalog_revision": current,
        "exported_catalog_revision": exported.revision if exported else None,
        "exported_at": exported.taken_at.isoformat() if exported else None,
        "up_to_date": bool(exported and exported.revision == current),
        "jobs_not_exported": {
            job.name: problem
            for job in (exported.jobs if exported else ())
            if (problem := job_problem(job)) is not None
        },
    }
    if output is OutputFormat.json:
        print_json(report)
    else:
        console.print(f"store catalog revision:    {current}", highlight=False)
        if exported is None:
            console.print(f"nothing exported to {dags_folder} yet", highlight=False)
        else:
            console.print(
                f"exported catalog revision: {exported.revision} ({report['exported_at']})",
                highlight=False,
            )
            if report["up_to_date"]:
                console.print("[green]up to date[/green]")
            else:
                console.print("[yellow]stale[/yellow] — run `etl-meta airflow export`")
    if not report["up_to_date"]:
        raise typer.Exit(1)


@app.command()
def clean(
    older_than: Annotated[
        datetime,
        typer.Option(
            "--older-than",
            parser=parse_since,
            metavar="AGE|TIME",
            help="Delete run directories untouched since: 7d, 12h, or an ISO time.",
        ),
    ],
) -> None:
    """Delete old hand-off files (ETL_META_AIRFLOW_DATA_DIR, else ETL_META_HOME/airflow)."""
    from etl_meta.airflow import handoff

    age = max((datetime.now(UTC) - older_than).total_seconds(), 0.0)
    root = handoff.data_dir(settings_for(None))
    removed = handoff.clean(age, root=root)
    console.print(f"removed {len(removed)} run director(ies) under {root}", highlight=False)


@app.command()
def reconcile(
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            parser=parse_since,
            metavar="AGE|TIME",
            help="Re-read runs changed since: 7d, 12h, or an ISO time (default: the cursor).",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Airflow's API server (default: ETL_META_AIRFLOW_API_URL)."),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", help="Airflow user (default: ETL_META_AIRFLOW_USERNAME)."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Its password (default: ETL_META_AIRFLOW_PASSWORD; prefer the variable).",
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Record what the store misses of etl-meta DAG runs, from Airflow's REST API (exactly once).

    A bearer token may be given in ETL_META_AIRFLOW_TOKEN instead of a user and password.
    """
    # Only the HTTP client: reconciling reads Airflow's REST API, it does not import Airflow.
    require_extra("airflow", "httpx", needed_by="etl-meta airflow reconcile")
    from etl_meta.airflow.connection import api_access
    from etl_meta.airflow.reconcile import reconcile as reconcile_pass

    with handle_errors():
        access = api_access(url=url, username=username, password=password)
        with (
            open_store(database_url, role="writer") as store,
            access.client() as client,
        ):
            result = reconcile_pass(store, client, since=since)
    if output is OutputFormat.json:
        print_json(
            {
                "runs_read": result.runs_read,
                "runs_written": result.runs_written,
                "attempts_written": result.attempts_written,
                "points_written": result.points_written,
                "skipped": result.skipped,
                "cursor": result.cursor,
                "seconds": round(result.seconds, 3),
            }
        )
    else:
        console.print(
            f"read {result.runs_read} run(s); wrote {result.runs_written} run(s), "
            f"{result.attempts_written} attempt(s), {result.points_written} metric point(s) "
            f"in {result.seconds:.2f} s; cursor {result.cursor or '-'}",
            highlight=False,
        )
    for run_id, problem in result.skipped.items():
        err_console.print(f"[yellow]not recorded:[/yellow] {run_id}: {problem}", highlight=False)
