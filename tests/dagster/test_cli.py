"""`etl-meta dagster run|status|reconcile` and `etl-meta runs request`, without a webserver."""

import json

import dagster as dg
import pytest
from typer.testing import CliRunner

from etl_meta import RunRequestStatus
from etl_meta.catalog import catalog_revision
from tests.dagster.support import chain_job, definitions
from tests.plugins import declaring_worker_types


@pytest.fixture
def cli(store_url, monkeypatch, tmp_path):
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path))
    monkeypatch.setenv("ETL_META_DATABASE_URL", store_url)  # what ops' resource reads
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    runner = CliRunner()
    from etl_meta.cli import app

    def invoke(*args: str, **kwargs):
        return runner.invoke(app, [*args, "--database-url", store_url], **kwargs)

    return invoke


def test_dagster_run_executes_a_stored_job_and_prints_what_the_store_recorded(cli, store):
    chain_job(store)
    result = cli("dagster", "run", "chain")
    assert result.exit_code == 0, result.output
    assert "store: run 1" in result.output and "success" in result.output
    assert "ConnectionError: simulated outage in b" in result.output
    (execution,) = store.executions.list(with_steps=True)
    assert execution.status == "success" and len(execution.steps) == 4


def test_dagster_status_without_a_webserver_still_reports_the_store(cli, store):
    chain_job(store)
    with declaring_worker_types(store, "no.such_type") as declaring:
        declaring.jobs.create(
            {
                "name": "broken",
                "components": [{"name": "mystery", "component_type": "no.such_type"}],
            }
        )
    result = cli("dagster", "status", "--url", "http://127.0.0.1:9", "--format", "json")
    assert result.exit_code == 2, result.output  # 2: the webserver is unreachable
    report = json.loads(result.output)
    assert report["store_catalog_revision"] == catalog_revision(store)
    assert report["loaded"] is None and report["webserver_error"]
    assert len(report["jobs_not_loadable"]) == 1
    assert report["jobs_not_loadable"][0].startswith("broken.mystery: unknown component type")


def _finished_runs(store, tmp_path, monkeypatch, count: int) -> list[str]:
    """``count`` successful runs of ``chain`` in a DAGSTER_HOME instance, which no sensor saw."""
    chain_job(store, num_of_retries=0)
    store.components.update("chain", "b", {"configuration": {"n": 1}})
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    job = definitions(store).resolve_job_def("chain")
    with dg.DagsterInstance.get() as instance:
        return [job.execute_in_process(instance=instance).run_id for _ in range(count)]


def test_dagster_reconcile_backfills_an_instance_history(cli, store, tmp_path, monkeypatch):
    run_ids = _finished_runs(store, tmp_path, monkeypatch, 3)
    for run_id in run_ids:  # the ops saw the runs start; nothing recorded how they ended
        assert store.executions.find("dagster", run_id).status == "running"
    result = cli("dagster", "reconcile", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert "recorded 3 etl-meta run(s)" in result.output
    assert {store.executions.find("dagster", r).status for r in run_ids} == {"success"}
    again = cli("dagster", "reconcile", "--since", "1h")
    assert again.exit_code == 0 and "recorded 3" in again.output  # idempotent replay
    assert len(store.executions.list()) == 3


def test_runs_request_creates_one_request_per_key(cli, store, tmp_path):
    chain_job(store)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("a:\n  n: 7\n")
    first = cli("runs", "request", "chain", "--config", str(overrides), "--key", "k1", "-f", "json")
    second = cli("runs", "request", "chain", "--key", "k1", "-f", "json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["id"] == json.loads(second.output)["id"]
    (request,) = store.run_requests.list()
    assert request.status is RunRequestStatus.PENDING
    assert store.run_requests.run_config(request.id) == {"a": {"n": 7}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not\n- a mapping\n")
    refused = cli("runs", "request", "chain", "--config", str(bad))
    assert refused.exit_code == 2 and "expected {component" in refused.output


def test_dagster_status_reports_finished_runs_the_store_has_not_recorded(
    cli, store, tmp_path, monkeypatch
):
    ids = _finished_runs(store, tmp_path, monkeypatch, 2)
    # The ops recorded their runs as running; no sensor saw them end.
    args = ("dagster", "status", "--url", "http://127.0.0.1:9", "--format", "json")
    behind = json.loads(cli(*args).output)["recording"]
    assert behind["finished_runs_checked"] == 2 and behind["finished_runs_not_recorded"] == 2
    assert behind["lag_seconds"] >= 0
    assert cli("dagster", "reconcile").exit_code == 0
    caught_up = json.loads(cli(*args).output)["recording"]
    assert caught_up == {
        "finished_runs_checked": 2,
        "finished_runs_not_recorded": 0,
        "lag_seconds": 0.0,
    }
    assert {store.executions.find("dagster", r).status for r in ids} == {"success"}
