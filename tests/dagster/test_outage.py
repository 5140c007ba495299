"""The store can never hurt a Dagster run: outages cost waiting or lateness, never a failure or a
lost record. In-process runs here; tests/deployment/ repeats this under a real ``dagster dev``."""

import json
import time
from contextlib import ExitStack

import pytest

from dagster_defs.reconcile import reconcile
from etl_meta import ExecutionStatus, StepStatus
from etl_meta.components import ComponentResult, ComponentType, register
from etl_meta.outbox import DAGSTER_KEY
from tests.dagster.support import (
    chain_job,
    dagster_env,
    definitions,
    fire_success_sensor,
    reconcile_tick,
    run,
)
from tests.outages import outage, released_after, writes_hang

#: The outage a component of type ``test.outage`` starts when it runs (set by each test).
OUTAGE: dict = {}


@register
class OutageType(ComponentType):
    """Starts the test's outage, then records metrics into it (and fails when told to)."""

    name = "test.outage"

    class Config(ComponentType.Config):
        fail: bool = False

    def run(self, context, config, inputs):
        OUTAGE["stack"].enter_context(OUTAGE["manager"])
        context.record_metrics({"seen": 1.0})
        context.record_metrics({"seen": 2.0})
        if config.fail:
            raise RuntimeError("the component itself failed")
        return ComponentResult(value=1, metrics={"rows": 7.0})


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    # Short waits keep the test quick; the defaults are 60 s and 5 s.
    monkeypatch.setenv("ETL_META_STORE_WAIT_SECONDS", "30")
    monkeypatch.setenv("ETL_META_RECORD_WAIT_SECONDS", "1")
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


@pytest.fixture
def held(store_url):
    """The outage ``test.outage`` components start; released at the end of the test."""
    OUTAGE["manager"] = writes_hang(store_url)
    with ExitStack() as stack:
        OUTAGE["stack"] = stack
        yield stack


def _outage_job(store, *, fail: bool = False, retries: int = 0) -> None:
    store.jobs.create(
        {
            "name": "blackout",
            "num_of_retries": retries,
            "components": [
                {
                    "name": "probe",
                    "component_type": "test.outage",
                    "configuration": {"fail": fail},
                }
            ],
        }
    )


def _points(store, run_id):
    execution = store.executions.find("dagster", run_id)
    if execution is None:
        return []
    return sorted(
        (p.component_name, p.name, p.step, p.attempt, p.value)
        for p in store.metrics.list(execution_id=execution.id)
    )


def _audit_count(store) -> int:
    return len(store.audit.list(limit=10_000))


def test_metrics_the_store_cannot_take_ride_on_the_event_and_reconcile_records_them_once(
    store, instance, held
):
    _outage_job(store)
    result = run(definitions(store).resolve_job_def("blackout"), instance)
    assert result.success  # the store hung on every write, and the op did not care
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    handed_off = output.event_specific_data.metadata[DAGSTER_KEY].value
    assert [p[1:5] for p in handed_off["points"]] == [
        ["seen", 1.0, 0, 1],
        ["seen", 2.0, 1, 1],
        ["rows", 7.0, 0, 1],
    ]
    held.close()
    assert _points(store, result.run_id) == []  # nothing reached the store during the run

    reconcile(store, instance)
    expected = [
        ("probe", "rows", 0, 1, 7.0),
        ("probe", "seen", 0, 1, 1.0),
        ("probe", "seen", 1, 1, 2.0),
    ]
    assert _points(store, result.run_id) == expected
    execution = store.executions.find("dagster", result.run_id)
    assert execution.status is ExecutionStatus.SUCCESS

    audit = _audit_count(store)
    for _ in range(3):
        reconcile(store, instance)
    assert _points(store, result.run_id) == expected
    assert _audit_count(store) == audit  # replays change nothing, not even the audit trail


def test_a_failing_step_hands_off_its_metrics_on_its_own_events(store, instance, held):
    _outage_job(store, fail=True)
    result = run(definitions(store).resolve_job_def("blackout"), instance)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "the component itself failed" in (failure.cause or failure).message
    held.close()
    reconcile(store, instance)
    assert _points(store, result.run_id) == [
        ("probe", "seen", 0, 1, 1.0),
        ("probe", "seen", 1, 1, 2.0),
    ]
    execution = store.executions.find("dagster", result.run_id, with_steps=True)
    assert execution.status is ExecutionStatus.FAILED
    (step,) = execution.steps
    assert step.status is StepStatus.FAILED
    assert step.error == "RuntimeError: the component itself failed"


@pytest.mark.parametrize("kind", ["refuse", "hang"])
def test_a_run_started_during_an_outage_waits_for_its_configuration_and_succeeds(
    store, store_url, instance, kind
):
    chain_job(store)
    job = definitions(store).resolve_job_def("chain")
    with released_after(3.0, outage(kind, store_url)) as over:
        result = run(job, instance)
        assert over()  # the run outlived the outage
    assert result.success
    reconcile(store, instance)
    execution = store.executions.find("dagster", result.run_id, with_steps=True)
    assert execution.status is ExecutionStatus.SUCCESS
    attempts = sorted((s.component_name, s.attempt, s.status) for s in execution.steps)
    assert attempts == [
        ("a", 1, StepStatus.SUCCESS),
        ("b", 1, StepStatus.FAILED),
        ("b", 2, StepStatus.SUCCESS),
        ("c", 1, StepStatus.SUCCESS),
    ]
    points = _points(store, result.run_id)
    assert len(points) == len(set(points))
    assert {(c, n, a) for c, n, _s, a, _v in points} == {
        ("a", "inputs", 1),
        ("a", "total", 1),
        ("c", "inputs", 1),
        ("c", "total", 1),
        ("b", "inputs", 2),
        ("b", "total", 2),
    }


def test_the_reconcile_sensor_yields_at_once_while_the_store_is_down_and_reports_the_lag(
    store, store_url, instance
):
    chain_job(store)
    first = reconcile_tick(instance)
    result = run(definitions(store).resolve_job_def("chain"), instance)
    time.sleep(1.1)  # so the unrecorded run is measurably old
    with outage("refuse", store_url):
        started = time.monotonic()
        down = reconcile_tick(instance, first.cursor)
        spent = time.monotonic() - started
    state = json.loads(down.cursor)
    assert state["interrupted"].startswith("store unavailable (")
    assert state["lag_seconds"] >= 1.0  # the finished run the store has not recorded yet
    assert spent < 45  # far inside Dagster's 60 s tick limit, whatever the store does
    up = reconcile_tick(instance, down.cursor)
    state = json.loads(up.cursor)
    assert state["lag_seconds"] == 0 and state["interrupted"] is None
    assert state["max_delay_seconds"] >= 1.0
    execution = store.executions.find("dagster", result.run_id)
    assert execution.status is ExecutionStatus.SUCCESS


def test_status_sensors_leave_a_run_to_reconcile_while_the_store_is_down(
    store, store_url, instance
):
    from dagster_defs import sensors

    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance)

    def fire() -> None:  # never raises for an outage: raising would lose the run anyway
        fire_success_sensor(instance, result)

    try:
        with outage("refuse", store_url):
            fire()
            assert not sensors._STATUS_BREAKER.allows()
            started = time.monotonic()
            fire()  # the breaker is open: no second wait on the store
            assert time.monotonic() - started < 1.0
        assert store.executions.find("dagster", result.run_id).status is ExecutionStatus.RUNNING
    finally:
        sensors._STATUS_BREAKER.succeeded()
    reconcile(store, instance)
    assert store.executions.find("dagster", result.run_id).status is ExecutionStatus.SUCCESS
