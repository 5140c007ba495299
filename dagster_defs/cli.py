"""``etl-meta dagster``: compare, reload and backfill the Dagster side of the store.

Plugged into ``etl-meta`` through the ``etl_meta.cli`` entry point. Dagster is imported inside
the commands only, so other ``etl-meta`` commands never pay for it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlparse

import typer

from dagster_defs.cli_run import quiet_dagster_warnings, run_jobs
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
)
from etl_meta.extras import require_extra

app = typer.Typer(help="Keep Dagster and the store in step.", no_args_is_help=True)

LOCATION = "etl_meta"
UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="ETL_META_DAGSTER_URL",
        help="The Dagster webserver (default: ETL_META_DAGSTER_URL or http://127.0.0.1:3000).",
    ),
]
_JOB_TAGS_QUERY = """
query EtlMetaJobs {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } jobs { name tags { key value } } }
    }
    ... on PythonError { message }
  }
}
"""


def _loaded_revisions(url: str) -> dict[str, dict[str, str]]:
    """``{job: {"revision": r, "catalog": c}}`` as the webserver's loaded location serves them."""
    import requests

    response = requests.post(
        url.rstrip("/") + "/graphql", json={"query": _JOB_TAGS_QUERY}, timeout=10
    )
    response.raise_for_status()
    nodes = response.json()["data"]["repositoriesOrError"].get("nodes", [])
    loaded: dict[str, dict[str, str]] = {}
    for repository in nodes:
        if repository["location"]["name"] != LOCATION:
            continue
        for job in repository["jobs"]:
            tags = {t["key"]: t["value"] for t in job["tags"]}
            if "etl_meta/job" in tags:
                loaded[job["name"]] = {
                    "revision": tags.get("etl_meta/revision", ""),
                    "catalog": tags.get("etl_meta/catalog_revision", ""),
                }
    return loaded


@app.command()
def status(
    url: UrlOption = "http://127.0.0.1:3000",
    recent: Annotated[
        int, typer.Option(min=1, max=10_000, help="Finished runs to check for recording lag.")
    ] = 500,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Compare the store's definitions with what the Dagster location has loaded, and (with
    DAGSTER_HOME set) how far the store is behind Dagster's finished runs.

    Exits 0 when the location is up to date, 1 when it is stale (run `etl-meta dagster reload`),
    2 when the webserver cannot be reached: scripts and CI checks can tell them apart.
    """
    # Each command checks its extra once its arguments are parsed, so a malformed command line
    # is still reported as such (exit 2) on an install without Dagster.
    require_extra("dagster", needed_by="etl-meta dagster status")
    from dagster_defs.jobs import build_jobs
    from etl_meta.catalog import take_snapshot

    with quiet_dagster_warnings():
        with open_store(database_url) as store, handle_errors():
            snapshot = take_snapshot(store)
            recording = _recording_lag(store, recent)
        _, errors = build_jobs(snapshot)
    report: dict[str, Any] = {
        "store_catalog_revision": snapshot.revision,
        "jobs_not_loadable": [str(e) for e in errors],
        "webserver": url,
        "recording": recording,
    }
    try:
        loaded = _loaded_revisions(url)
    except Exception as exc:  # no webserver is a normal state: say so, still report the store
        report["loaded"] = None
        report["webserver_error"] = type(exc).__name__
        loaded = None
    if loaded is not None:
        catalogs = {j["catalog"] for j in loaded.values()}
        report["loaded_catalog_revision"] = catalogs.pop() if len(catalogs) == 1 else None
        report["stale_jobs"] = sorted(
            job.name
            for job in snapshot.jobs
            if loaded.get(job.name, {}).get("revision") != str(job.revision)
        )
        report["up_to_date"] = report["loaded_catalog_revision"] == snapshot.revision
    if output is OutputFormat.json:
        print_json(report)
        raise typer.Exit(_status_code(report))
    console.print(f"store catalog revision:  {snapshot.revision}", highlight=False)
    if recording is not None:
        console.print(
            f"recording lag:           {recording['lag_seconds']:.0f}s "
            f"({recording['finished_runs_not_recorded']} of the last "
            f"{recording['finished_runs_checked']} finished run(s) not recorded yet)",
            highlight=False,
        )
    if loaded is None:
        console.print(f"dagster webserver:       not reachable at {url}", highlight=False)
    else:
        console.print(
            f"loaded in {LOCATION!r}:      {report['loaded_catalog_revision'] or 'mixed/none'}",
            highlight=False,
        )
        if report["up_to_date"]:
            console.print("[green]up to date[/green]")
        else:
            stale = ", ".join(report["stale_jobs"]) or "(jobs added or removed)"
            console.print(f"[yellow]stale:[/yellow] {stale} — run `etl-meta dagster reload`")
    for error in errors:
        err_console.print(f"[red]not loadable:[/red] {error}", highlight=False)
    raise typer.Exit(_status_code(report))


#: ``etl-meta dagster status`` exit codes (documented in docs/cli.md).
STATUS_UP_TO_DATE, STATUS_STALE, STATUS_UNREACHABLE = 0, 1, 2


def _status_code(report: dict[str, Any]) -> int:
    """0 up to date, 1 stale, 2 webserver unreachable (nothing known about the location)."""
    if "webserver_error" in report:
        return STATUS_UNREACHABLE
    return STATUS_UP_TO_DATE if report.get("up_to_date") else STATUS_STALE


def _recording_lag(store: Any, recent: int) -> dict[str, Any] | None:
    """How far the store is behind the Dagster instance (DAGSTER_HOME) on finished runs."""
    import os
    import time

    import dagster as dg

    from dagster_defs.jobs import TAG_JOB
    from etl_meta.models import ExecutionStatus

    if not os.environ.get("DAGSTER_HOME"):
        return None
    instance = dg.DagsterInstance.get()
    finished = [
        record
        for record in instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.SUCCESS,
                    dg.DagsterRunStatus.FAILURE,
                    dg.DagsterRunStatus.CANCELED,
                ]
            ),
            limit=recent,
        )
        if TAG_JOB in record.dagster_run.tags
    ]
    stored = {
        e.external_run_id: e.status
        for e in store.executions.list(orchestrator="dagster", limit=max(recent * 2, 100))
    }
    behind = [
        r
        for r in finished
        if stored.get(r.dagster_run.run_id, ExecutionStatus.RUNNING)
        in (ExecutionStatus.RUNNING, ExecutionStatus.QUEUED)
    ]
    ends = [r.end_time for r in behind if r.end_time is not None]
    return {
        "finished_runs_checked": len(finished),
        "finished_runs_not_recorded": len(behind),
        "lag_seconds": round(max(time.time() - min(ends), 0.0), 1) if ends else 0.0,
    }


@app.command()
def reload(url: UrlOption = "http://127.0.0.1:3000") -> None:
    """Reload the ``etl_meta`` code location through the webserver's GraphQL API."""
    require_extra("dagster", needed_by="etl-meta dagster reload")
    from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

    parsed = urlparse(url)
    client = DagsterGraphQLClient(
        parsed.hostname or "127.0.0.1",
        port_number=parsed.port,
        use_https=parsed.scheme == "https",
    )
    info = client.reload_repository_location(LOCATION)
    if info.status != ReloadRepositoryLocationStatus.SUCCESS:
        err_console.print(f"[red]reload failed:[/red] {info.message}", highlight=False)
        raise typer.Exit(1)
    loaded = _loaded_revisions(url)
    catalogs = sorted({j["catalog"] for j in loaded.values()})
    console.print(
        f"reloaded {LOCATION!r}: {len(loaded)} job(s), catalog {', '.join(catalogs) or '-'}",
        highlight=False,
    )


@app.command()
def reconcile(
    since: Annotated[
        str | None,
        typer.Option(help="Only runs updated in this window (7d, 12h, 30m) or after an ISO time."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Runs per batch.")] = 100,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Record every etl-meta run of the Dagster instance (DAGSTER_HOME) in the store."""
    require_extra("dagster", needed_by="etl-meta dagster reconcile")
    import dagster as dg
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from dagster_defs.reconcile import reconcile as reconcile_pass

    cursor = parse_since(since).timestamp() if since else None
    with open_store(database_url) as store, handle_errors():
        instance = dg.DagsterInstance.get()
        after = dg.RunsFilter(
            updated_after=parse_since(since) if since else None,
        )
        total = instance.get_runs_count(after)
        recorded = skipped = 0
        failed: list[str] = []
        with Progress(
            TextColumn("reconciling"), BarColumn(), MofNCompleteColumn(), console=err_console
        ) as progress:
            task = progress.add_task("runs", total=total)
            while True:
                result = reconcile_pass(
                    store,
                    instance,
                    cursor=cursor,
                    limit=batch,
                    progress=lambda n: progress.advance(task, n),
                )
                recorded += result.recorded
                skipped += result.skipped
                failed += result.failed
                if result.interrupted is not None:
                    break  # the store went away mid-pass: say where, exit non-zero
                if result.cursor == cursor or not result.remaining:
                    break
                cursor = result.cursor
    console.print(
        f"recorded {recorded} etl-meta run(s), skipped {skipped} other run(s)"
        + (f", {len(failed)} failed: {json.dumps(failed[:10])}" if failed else ""),
        highlight=False,
    )
    if result.interrupted is not None:
        err_console.print(
            f"[red]stopped:[/red] {result.interrupted}; run it again once the store is back "
            "(recording is idempotent)",
            highlight=False,
        )
    if failed or result.interrupted is not None:
        raise typer.Exit(1)


app.command("run")(run_jobs)
