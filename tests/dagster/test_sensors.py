"""Sensors through their real tick logic: status sensors, reconciliation, run requests."""

import json

import dagster as dg
import pytest
import sqlalchemy as sa

from dagster_defs.recording import TAG_RUN_REQUEST
from dagster_defs.resources import EtlMetaResource
from dagster_defs.sensors import run_request_sensor, status_sensors
from etl_meta import ExecutionStatus, RunRequestStatus, SchemaNotInitializedError, StepStatus
from etl_meta.errors import StoreUnavailableError
from etl_meta.models import Execution, MetricPointRow, MetricSeries
from tests.dagster.support import chain_job, dagster_env, definitions, reconcile_tick, run


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


def _on_success(store_url=""):
    sensor = next(s for s in status_sensors() if s.name == "etl_meta_on_run_success")
    return sensor, {"etl_meta": EtlMetaResource(database_url=store_url)}


def _fire(sensor, resources, instance, result):
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
        resources=resources,
    ) as context:
        sensor(context)


def test_the_success_sensor_records_the_run_with_every_attempt(store, instance):
    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance)
    sensor, resources = _on_success()
    _fire(sensor, resources, instance, result)
    execution = store.executions.find("dagster", result.run_id, with_steps=True)
    assert execution.status is ExecutionStatus.SUCCESS and execution.job_revision == 1
    assert execution.ended_at >= execution.started_at
    attempts = [(s.component_name, s.attempt, s.status) for s in execution.steps]
    assert sorted(attempts) == [
        ("a", 1, StepStatus.SUCCESS),
        ("b", 1, StepStatus.FAILED),
        ("b", 2, StepStatus.SUCCESS),
        ("c", 1, StepStatus.SUCCESS),
    ]
    failed = next(s for s in execution.steps if s.status is StepStatus.FAILED)
    assert failed.error == "ConnectionError: simulated outage in b"
    assert all(s.duration_seconds is not None for s in execution.steps)
    metrics = {
        (m.component_name, m.name, m.attempt): m.value
        for m in store.metrics.list(execution_id=execution.id)
    }
    assert metrics[("b", "total", 2)] == 111.0 and metrics[("a", "inputs", 1)] == 0.0


def test_a_run_waiting_in_the_run_queue_is_in_the_store_as_queued(store, instance):
    """With Dagster's run queue a run may wait minutes for a slot: the queued sensor records it
    at once, with its tags; a replay of the tick changes nothing, not even the audit trail."""
    chain_job(store)
    job = definitions(store).resolve_job_def("chain")
    # Not started yet, as a queued run is (a QUEUED one needs a code location's origin); its
    # tags are the job's and the launch's, as Dagster gives a launched run.
    queued = instance.create_run_for_job(job, tags={**job.tags, "team": "queue"})
    sensor = next(s for s in status_sensors() if s.name == "etl_meta_on_run_queued")
    enqueued = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.RUN_ENQUEUED.value, job_name=job.name
    )

    def tick() -> None:
        with dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=queued,
            dagster_event=enqueued,
            resources={"etl_meta": EtlMetaResource()},
        ) as context:
            sensor(context)

    tick()
    waiting = store.executions.find("dagster", queued.run_id, with_steps=True)
    assert waiting.status is ExecutionStatus.QUEUED and waiting.steps == []
    assert waiting.tags.get("team") == "queue"
    audited = len(store.audit.list(limit=1000))
    tick()
    assert store.executions.find("dagster", queued.run_id).updated_at == waiting.updated_at
    assert len(store.audit.list(limit=1000)) == audited


def test_replaying_the_sensor_any_number_of_times_changes_nothing(store, instance):
    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance)
    sensor, resources = _on_success()
    _fire(sensor, resources, instance, result)
    before = (
        store.executions.find("dagster", result.run_id, with_steps=True),
        len(store.audit.list(limit=1000)),
    )
    for _ in range(3):
        _fire(sensor, resources, instance, result)
        assert reconcile_tick(instance).cursor is not None
    after = (
        store.executions.find("dagster", result.run_id, with_steps=True),
        len(store.audit.list(limit=1000)),
    )
    assert after == before


def test_reconciliation_records_a_run_whose_handler_raised(store, instance, tmp_path):
    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance)
    broken, resources = _on_success(store_url=f"sqlite:///{tmp_path}/missing/none.db")
    # No store there (a permanent error, so it is raised): Dagster would skip this run for good.
    with pytest.raises(SchemaNotInitializedError):
        _fire(broken, resources, instance, result)
    # Only what the ops wrote themselves is there: the run still looks unfinished.
    assert store.executions.find("dagster", result.run_id).status is ExecutionStatus.RUNNING
    tick = reconcile_tick(instance)
    assert store.executions.find("dagster", result.run_id).status is ExecutionStatus.SUCCESS
    state = json.loads(tick.cursor)
    assert state["remaining"] == 0 and state["lag_seconds"] == 0
    assert reconcile_tick(instance, tick.cursor).cursor == tick.cursor  # nothing new: cursor stays


def test_reconciliation_catches_up_in_bounded_batches_and_reports_the_backlog(store, instance):
    from dagster_defs.reconcile import reconcile

    chain_job(store, num_of_retries=0)
    store.components.update("chain", "b", {"configuration": {"n": 1}})
    job = definitions(store).resolve_job_def("chain")
    run_ids = [run(job, instance).run_id for _ in range(5)]
    first = reconcile(store, instance, limit=2)
    assert first.recorded == 2 and first.remaining == 3 and first.lag_seconds >= 0
    cursor, seen = first.cursor, first.recorded
    while True:
        batch = reconcile(store, instance, cursor=cursor, limit=2)
        seen += batch.recorded
        if not batch.remaining:
            break
        cursor = batch.cursor
    assert seen == 5
    assert {store.executions.find("dagster", r).status for r in run_ids} == {
        ExecutionStatus.SUCCESS
    }


def test_a_run_request_becomes_exactly_one_run_and_follows_its_outcome(store, instance):
    chain_job(store)
    defs = definitions(store)
    job = defs.resolve_job_def("chain")
    sensor = run_request_sensor([job])
    request = store.run_requests.create(
        {"job": "chain", "request_key": "nightly", "run_config": {"a": {"n": 7, "password": "***"}}}
    )
    with dg.build_sensor_context(
        instance=instance, resources={"etl_meta": EtlMetaResource()}
    ) as context:
        tick = sensor.evaluate_tick(context)
    (wanted,) = tick.run_requests
    assert wanted.run_key == f"etl_meta_run_request_{request.id}"
    assert wanted.tags[TAG_RUN_REQUEST] == str(request.id)
    assert wanted.run_config == {"ops": {"a": {"config": {"n": 7, "password": "***"}}}}
    # The daemon would launch it; do so here with the request's tags and config.
    result = run(job, instance, run_config=wanted.run_config, tags=wanted.tags)
    assert result.output_for_node("b").value == 117
    with dg.build_sensor_context(
        instance=instance, resources={"etl_meta": EtlMetaResource()}
    ) as context:
        again = sensor.evaluate_tick(context)
    assert again.run_requests == []  # linked to the existing run, never launched twice
    linked = store.run_requests.get(request.id)
    assert linked.status is RunRequestStatus.SUCCESS and linked.external_run_id == result.run_id


def test_requests_for_jobs_this_location_cannot_run_stay_pending(store, instance):
    chain_job(store)
    store.jobs.create(
        {"name": "elsewhere", "components": [{"name": "x", "component_type": "test.add"}]}
    )
    job = definitions(store).resolve_job_def("chain")
    request = store.run_requests.create({"job": "elsewhere"})
    with dg.build_sensor_context(
        instance=instance, resources={"etl_meta": EtlMetaResource()}
    ) as context:
        tick = run_request_sensor([job]).evaluate_tick(context)
    assert tick.run_requests == []
    assert store.run_requests.get(request.id).status is RunRequestStatus.PENDING


def test_stored_attempts_carry_the_configuration_version_they_ran(store, instance):
    chain_job(store)
    for n in (200, 300):  # versions 2 and 3 of b
        store.components.update(
            "chain", "b", {"configuration": {"n": n, "fail_first": 0, "password": "pw-secret"}}
        )
    result = run(definitions(store).resolve_job_def("chain"), instance)
    reconcile_tick(instance)
    execution = store.executions.find("dagster", result.run_id, with_steps=True)
    assert result.output_for_node("b").value == 311
    assert execution.config_versions == {"a": 1, "b": 3, "c": 1}
    assert {(s.component_name, s.config_version) for s in execution.steps} == {
        ("a", 1),
        ("b", 3),
        ("c", 1),
    }


def test_a_full_rewalk_of_a_store_that_has_everything_writes_nothing(store, instance):
    from dagster_defs.reconcile import reconcile

    chain_job(store, num_of_retries=0)
    job = definitions(store).resolve_job_def("chain")
    run_ids = [run(job, instance).run_id for _ in range(3)]
    first = reconcile(store, instance)
    assert first.recorded == 3
    audited = len(store.audit.list(limit=1000))
    stored = {r: store.executions.find("dagster", r, with_steps=True) for r in run_ids}
    again = reconcile(store, instance)  # cursor None: every run again
    assert (again.recorded, again.unchanged, again.failed) == (3, 3, [])
    assert {r: store.executions.find("dagster", r, with_steps=True) for r in run_ids} == stored
    assert len(store.audit.list(limit=1000)) == audited


def test_a_full_rewalk_fixes_a_run_the_store_holds_stale(store, instance):
    from dagster_defs.reconcile import reconcile

    chain_job(store, num_of_retries=0)
    job = definitions(store).resolve_job_def("chain")
    stale, fresh = run(job, instance).run_id, run(job, instance).run_id
    reconcile(store, instance)
    ended = store.executions.find("dagster", stale).status
    assert ended.is_terminal
    with store.transaction() as session:  # the store lost the end of one run (say, a restore)
        row = session.query(Execution).filter_by(external_run_id=stale).one()
        row.status, row.ended_at = ExecutionStatus.RUNNING, None
    again = reconcile(store, instance)
    assert (again.recorded, again.unchanged) == (2, 1)
    assert store.executions.find("dagster", stale).status is ended
    assert store.executions.find("dagster", fresh).status.is_terminal


def test_a_run_is_recorded_whole_or_not_at_all(store, instance, monkeypatch):
    from dagster_defs.reconcile import reconcile
    from etl_meta.store.metrics import MetricsAPI

    chain_job(store, num_of_retries=0)
    job = definitions(store).resolve_job_def("chain")
    run_id = run(job, instance).run_id
    handed_off = len(store.metrics.list(execution_id=store.executions.find("dagster", run_id).id))

    def unavailable(*_args, **_kwargs):
        raise StoreUnavailableError("the store is unavailable: connection reset")

    with store.transaction() as session:  # as if the ops' own writes never reached the store
        session.execute(sa.delete(MetricPointRow))
        session.execute(sa.delete(MetricSeries))
    monkeypatch.setattr(MetricsAPI, "record", unavailable)
    stopped = reconcile(store, instance, write_seconds=0)
    assert stopped.interrupted and stopped.recorded == 0
    # The run's end was not stored without its points, so the next pass still records both.
    assert store.executions.find("dagster", run_id).status is ExecutionStatus.RUNNING
    monkeypatch.undo()
    assert reconcile(store, instance).recorded == 1
    execution = store.executions.find("dagster", run_id)
    assert execution.status.is_terminal
    assert len(store.metrics.list(execution_id=execution.id)) == handed_off > 0


def test_a_run_the_store_refuses_for_good_is_listed_and_the_others_of_its_page_are_recorded(
    store, instance, monkeypatch
):
    from dagster_defs.reconcile import reconcile
    from etl_meta.errors import ConflictError
    from etl_meta.store.executions import ExecutionsAPI

    chain_job(store, num_of_retries=0)
    job = definitions(store).resolve_job_def("chain")
    first, refused, last = (run(job, instance).run_id for _ in range(3))
    upsert = ExecutionsAPI.upsert

    def refuse_one(api, data, **kwargs):
        if data["external_run_id"] == refused:
            raise ConflictError("refused for good", entity="execution")
        return upsert(api, data, **kwargs)

    monkeypatch.setattr(ExecutionsAPI, "upsert", refuse_one)
    result = reconcile(store, instance)
    assert (result.recorded, result.failed, result.interrupted) == (2, [refused], None)
    assert result.cursor == instance.get_run_record_by_id(last).update_timestamp.timestamp()
    for run_id in (first, last):
        assert store.executions.find("dagster", run_id).status.is_terminal
    assert not store.executions.find("dagster", refused).status.is_terminal
    monkeypatch.undo()
    assert reconcile(store, instance).recorded == 3
    assert store.executions.find("dagster", refused).status.is_terminal
