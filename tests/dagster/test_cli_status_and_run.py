"""`etl-meta dagster status` exit codes, and `etl-meta dagster run` output a terminal can read."""

from __future__ import annotations

import json
import warnings

import dagster as dg
import pytest
from typer.testing import CliRunner

from etl_meta.catalog import catalog_revision
from etl_meta.components import ComponentResult, ComponentType, register
from tests.dagster.support import chain_job

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def cli(store_url, monkeypatch, tmp_path):
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path))
    monkeypatch.setenv("ETL_META_DATABASE_URL", store_url)  # what ops' resource reads
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    runner = CliRunner()
    from etl_meta.cli import app

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--database-url", store_url])

    return invoke


def _serve(monkeypatch, store, *, catalog: str | None = None, revision: str = "1") -> None:
    """A webserver whose ``etl_meta`` location has ``chain`` loaded at these revisions."""
    loaded = {"chain": {"revision": revision, "catalog": catalog or catalog_revision(store)}}
    # By name: dagster_defs.cli is loaded through etl-meta's plugin entry point, after etl_meta.cli.
    monkeypatch.setattr("dagster_defs.cli._loaded_revisions", lambda url: loaded)


@pytest.mark.parametrize("output", ["table", "json"])
def test_status_exits_0_when_the_location_is_up_to_date(cli, store, monkeypatch, output):
    chain_job(store)
    _serve(monkeypatch, store)
    result = cli("dagster", "status", "--format", output)
    assert result.exit_code == 0, result.output
    if output == "json":
        assert json.loads(result.stdout)["up_to_date"] is True
    else:
        assert "up to date" in result.stdout


@pytest.mark.parametrize("output", ["table", "json"])
def test_status_exits_1_when_the_location_is_stale(cli, store, monkeypatch, output):
    chain_job(store)
    _serve(monkeypatch, store, catalog="0123456789ab", revision="0")
    result = cli("dagster", "status", "--format", output)
    assert result.exit_code == 1, result.output
    if output == "json":
        report = json.loads(result.stdout)
        assert report["up_to_date"] is False and report["stale_jobs"] == ["chain"]
    else:
        assert "stale" in result.stdout and "etl-meta dagster reload" in result.stdout


@pytest.mark.parametrize("output", ["table", "json"])
def test_status_exits_2_when_the_webserver_is_unreachable(cli, store, output):
    chain_job(store)
    result = cli("dagster", "status", "--url", UNREACHABLE, "--format", output)
    assert result.exit_code == 2, result.output
    if output == "json":
        report = json.loads(result.stdout)
        assert report["loaded"] is None and report["store_catalog_revision"]
    else:
        assert "not reachable" in result.stdout


@register
class ChattyType(ComponentType):
    """Logs a line at INFO, as the built-in readers do ("read 15 rows from …")."""

    name = "test.dagster_chatty"

    def run(self, context, config, inputs):
        context.log.info("chatty step says hello")
        return ComponentResult(metrics={"rows": 1})


def _quiet_chain(store, name: str) -> None:
    """``chain`` without its planned failure, plus a step that logs at INFO: nothing that
    Dagster logs at WARNING or above."""
    chain_job(store, name)
    store.components.update(name, "b", {"configuration": {"n": 1}})
    store.components.create(
        name, {"name": "chatty", "component_type": "test.dagster_chatty", "depends_on": ["b"]}
    )


def test_dagster_run_keeps_dagsters_log_out_of_the_tables_and_prints_them_last(cli, store):
    _quiet_chain(store, "first")
    _quiet_chain(store, "second")
    result = cli("dagster", "run", "first", "second")
    assert result.exit_code == 0, result.output
    # No Dagster log lines anywhere (the step's INFO line went to stderr before).
    assert "chatty step says hello" not in result.output
    assert " - dagster - " not in result.output
    # Progress on stderr; stdout holds only what the store recorded, job after job.
    assert "running first" in result.stderr and "running second" in result.stderr
    assert "running" not in result.stdout
    first = result.stdout.index("first: steps")
    assert first < result.stdout.index("second: steps")
    assert result.stdout.lstrip().startswith("store: run")


def test_dagster_run_shows_dagsters_step_lines_on_stderr_when_asked(cli, store):
    _quiet_chain(store, "chain")
    result = cli("dagster", "run", "chain", "--dagster-log", "info")
    assert result.exit_code == 0, result.output
    assert "chatty step says hello" in result.stderr
    assert "chatty step says hello" not in result.stdout


def test_dagster_run_silences_dagsters_beta_warnings_for_itself_only(cli, store):
    _quiet_chain(store, "chain")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        result = cli("dagster", "run", "chain")
        assert list(warnings.filters) == filters  # the caller's filters are left as they were
    assert result.exit_code == 0, result.output
    shown = [w for w in caught if issubclass(w.category, dg.BetaWarning | dg.PreviewWarning)]
    assert shown == []
    assert "BetaWarning" not in result.output
