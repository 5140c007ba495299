"""The retention job and its daily schedule in the code location, against a real store."""

from datetime import timedelta

import dagster as dg
import pytest

from dagster_defs.maintenance import (
    RETENTION_ACTOR,
    RETENTION_JOB,
    RETENTION_SCHEDULE,
    retention_job,
    retention_schedule,
)
from dagster_defs.resources import EtlMetaResource
from etl_meta.config import Settings
from tests.dagster.support import chain_job, dagster_env, definitions, run
from tests.factories import unique
from tests.store.test_retention_pass import NOW


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


def test_the_location_has_the_job_and_a_stopped_daily_schedule(store, instance):
    chain_job(store)
    defs = definitions(store)
    assert defs.resolve_job_def(RETENTION_JOB).name == RETENTION_JOB
    schedule = defs.resolve_schedule_def(RETENTION_SCHEDULE)
    assert schedule.cron_schedule == "0 3 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_job_def("chain") is not None  # the stored jobs load as before


def test_the_schedule_follows_the_settings(monkeypatch):
    monkeypatch.setenv("ETL_META_RETENTION_SCHEDULE", "15 1 * * 0")
    monkeypatch.setenv("ETL_META_RETENTION_SCHEDULE_RUNNING", "true")
    schedule = retention_schedule(Settings())
    assert schedule.cron_schedule == "15 1 * * 0"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_schedule_tick_asks_for_one_retention_run(instance):
    schedule = retention_schedule(Settings())
    with dg.build_schedule_context(instance=instance) as context:
        data = schedule.evaluate_tick(context)
    assert [request.job_name for request in data.run_requests or []] in ([None], [RETENTION_JOB])


def test_the_job_runs_the_pass_against_the_store_as_its_own_actor(store, instance):
    chain_job(store)
    store.retention.set_default({"raw_days": 30, "rollup_days": 60})
    # As the location binds it: the store from ETL_META_DATABASE_URL (set by dagster_env).
    located = definitions(store).resolve_job_def(RETENTION_JOB)
    assert run(located, instance).success  # nothing old yet: nothing to do, no failure
    expired = _finished_run(store, "chain", age_days=200)
    rolled = _finished_run(store, "chain", age_days=50)
    result = run(located, instance)
    assert result.success
    remaining = {r.id for r in store.executions.list(limit=100)}
    assert expired not in remaining and rolled in remaining
    events = store.audit.list(action="retention")
    assert {e.actor for e in events} == {RETENTION_ACTOR} and len(events) == 2
    (step,) = result.get_step_success_events()
    assert step.step_key == "apply_retention"


def test_a_store_that_is_down_fails_only_the_retention_run(store, instance, monkeypatch):
    chain_job(store)
    monkeypatch.setenv("ETL_META_STORE_WAIT_SECONDS", "0")
    down = EtlMetaResource(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    failed = run(retention_job, instance, resources={"etl_meta": down})
    assert not failed.success
    assert "StoreUnavailableError" in str(failed.get_step_failure_events()[0].event_specific_data)
    other = run(definitions(store).resolve_job_def("chain"), instance)
    assert other.success


def _finished_run(store, job: str, *, age_days: int) -> int:
    """A successful run of ``job`` ``age_days`` old with one point on its first step."""
    started = NOW - timedelta(days=age_days)
    execution = store.executions.upsert(
        {
            "job": job,
            "orchestrator": "dagster",
            "external_run_id": unique("run"),
            "status": "success",
            "started_at": started,
            "ended_at": started + timedelta(hours=1),
        }
    )
    store.metrics.record([("a", "rows", 1.0, 0, 1, started)], execution_id=execution.id)
    return execution.id
