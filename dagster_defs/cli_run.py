"""``etl-meta dagster run``: run stored jobs through Dagster in-process, then show the record.

Registered by :mod:`dagster_defs.cli`; Dagster is imported inside the functions only, so loading
the ``etl-meta`` command line costs nothing until a Dagster command runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from etl_meta.cli import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    open_store,
    print_table,
    require_existing_store,
    settings_for,
    when,
)
from etl_meta.config import Settings
from etl_meta.extras import require_extra


class LogLevel(StrEnum):
    """Levels of Dagster's console log ``dagster run`` may show."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


@contextmanager
def quiet_dagster_warnings() -> Iterator[None]:
    """Hide Dagster's ``BetaWarning`` / ``PreviewWarning`` for the duration of one command.

    They flag Dagster APIs etl-meta chose knowingly; in a terminal they read as a problem with
    the user's setup. Scoped to the command, so a library user's own warning filters stand.
    """
    import warnings

    import dagster as dg

    with warnings.catch_warnings():
        for category in (dg.BetaWarning, dg.PreviewWarning):
            warnings.simplefilter("ignore", category)
        yield


def run_jobs(
    jobs: Annotated[list[str], typer.Argument(help="Stored jobs to run, in this order.")],
    base_dir: Annotated[
        Path | None,
        typer.Option(help="Resolve relative paths in configuration here (ETL_META_BASE_DIR)."),
    ] = None,
    database_url: DatabaseUrlOption = None,
    dagster_log: Annotated[
        LogLevel,
        typer.Option(
            "--dagster-log",
            help="Lowest level of Dagster's own log (stderr) shown: info shows each step's lines.",
        ),
    ] = LogLevel.warning,
) -> None:
    """Run stored jobs through Dagster in this process and show what the store recorded.

    Uses the Dagster instance in DAGSTER_HOME when set (the runs then show in the UI), else a
    temporary one. Jobs are built exactly as the code location builds them. Dagster's own
    log (stderr) shows warnings and errors unless ``--dagster-log info`` asks for each step's
    lines; the tables of what the store recorded (stdout) follow once every job has run.
    """
    require_extra("dagster", needed_by="etl-meta dagster run")
    settings = settings_for(database_url)
    require_existing_store(settings)
    # From the imports on: Dagster warns while modules and definitions load, too.
    with quiet_dagster_warnings():
        failed = _run_and_print(jobs, base_dir, database_url, settings, dagster_log)
    if failed:
        raise typer.Exit(1)


def _run_and_print(
    jobs: list[str],
    base_dir: Path | None,
    database_url: str | None,
    settings: Settings,
    log_level: LogLevel,
) -> bool:
    """Run ``jobs``, then print what the store recorded of each; True when one failed."""
    from dagster_defs.loader import definitions_from_catalog
    from dagster_defs.recording import record_run
    from etl_meta.catalog import take_snapshot

    overrides = {}
    if base_dir is not None:
        settings = settings.model_copy(update={"base_dir": base_dir.resolve()})
        overrides["ETL_META_BASE_DIR"] = str(base_dir.resolve())
    if database_url:
        overrides["ETL_META_DATABASE_URL"] = database_url
    failed = False
    run_ids: list[str] = []
    # The resource reads its settings from the environment, like it does under `dagster dev`.
    with _environment(overrides), open_store(settings=settings) as store, handle_errors():
        definitions = definitions_from_catalog(take_snapshot(store))
        with _instance() as instance:
            for name in jobs:
                job = definitions.resolve_job_def(name)
                # Progress on stderr, with Dagster's log: stdout holds only the tables below.
                err_console.print(f"running {name} through Dagster …", highlight=False)
                result = job.execute_in_process(
                    instance=instance, raise_on_error=False, run_config=_run_config(job, log_level)
                )
                record_run(store, instance, result.run_id)
                failed |= not result.success
                run_ids.append(result.run_id)
        for run_id in run_ids:
            _print_recorded(store, run_id)
    return failed


def _run_config(job: Any, log_level: LogLevel) -> dict[str, Any]:
    """The job's own run config, its console logger at ``log_level``.

    Dagster's console logger writes each step's lines to stderr (at INFO, the job's default);
    in a terminal they land between the tables this command prints. The job's config is copied
    whole: a run config naming some loggers starts only those, and the file logger must keep
    running.
    """
    config = dict(job.run_config or {})
    loggers = dict(config.get("loggers") or {})
    loggers["console"] = {"config": {"log_level": log_level.value.upper()}}
    config["loggers"] = loggers
    return config


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then restore them exactly."""
    import os

    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _instance():
    import os
    import tempfile

    import dagster as dg

    @contextmanager
    def opened():
        if os.environ.get("DAGSTER_HOME"):
            yield dg.DagsterInstance.get()
            return
        with tempfile.TemporaryDirectory() as home:
            Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            with dg.DagsterInstance.from_config(home) as instance:
                yield instance

    return opened()


def _print_recorded(store: Any, run_id: str) -> None:
    execution = store.executions.find("dagster", run_id, with_steps=True)
    console.print(
        f"  store: run {execution.id} ({run_id[:8]}) {execution.status}, "
        f"{execution.duration_seconds or 0:.1f}s",
        highlight=False,
    )
    print_table(
        f"{execution.job_name}: steps",
        ["component", "attempt", "status", "started", "took", "error"],
        [
            (
                s.component_name,
                s.attempt,
                s.status,
                when(s.started_at),
                f"{s.duration_seconds:.2f}s" if s.duration_seconds is not None else "",
                (s.error or "")[:70],
            )
            for s in execution.steps or []
        ],
    )
    metrics = store.metrics.list(execution_id=execution.id, final_attempt_only=True)
    print_table(
        f"{execution.job_name}: metrics",
        ["component", "metric", "value"],
        [(m.component_name, m.name, f"{m.value:g}") for m in metrics],
    )
