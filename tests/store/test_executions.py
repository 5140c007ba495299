"""Runs and step attempts: idempotent upserts keyed by the orchestrator, forward-only status."""

from datetime import timedelta

import pytest

from etl_meta import ConflictError, ExecutionStatus, NotFoundError, StepStatus, ValidationError
from etl_meta.masking import MASK
from tests.factories import T0


def _run(job, run_id="run-1", **fields):
    return {"job": job, "orchestrator": "dagster", "external_run_id": run_id, **fields}


def test_replaying_a_run_event_changes_nothing(store, factory):
    job = factory.job()
    event = _run(job.name, status="success", started_at=T0, ended_at=T0 + timedelta(seconds=3))
    first = store.executions.upsert(event)
    audit_count = len(store.audit.list())
    for _ in range(3):
        again = store.executions.upsert(event)
    assert again == first
    assert len(store.executions.list()) == 1
    assert len(store.audit.list()) == audit_count


def test_a_late_started_event_never_overwrites_success(store, factory):
    job = factory.job()
    store.executions.upsert(_run(job.name, status="running", started_at=T0))
    done = store.executions.upsert(
        _run(job.name, status="success", ended_at=T0 + timedelta(seconds=5))
    )
    late = store.executions.upsert(
        _run(job.name, status="running", started_at=T0 + timedelta(seconds=1), log_path="/l.log")
    )
    assert late.status is ExecutionStatus.SUCCESS
    assert late.started_at == T0
    assert late.log_path is None  # a settled run takes nothing from a late event
    assert late.ended_at == done.ended_at
    assert late.duration_seconds == 5.0


def test_the_first_terminal_status_wins(store, factory):
    job = factory.job()
    store.executions.upsert(_run(job.name, status="failed", error="boom"))
    after = store.executions.upsert(_run(job.name, status="success"))
    assert after.status is ExecutionStatus.FAILED and after.error == "boom"


def test_a_run_and_its_attempts_are_recorded_together(store, factory):
    job = factory.job()
    run = store.executions.upsert(
        _run(job.name, status="success", started_at=T0),
        steps=[
            {
                "component": "extract",
                "attempt": 1,
                "status": "failed",
                "error": "timeout",
                "started_at": T0,
                "ended_at": T0 + timedelta(seconds=1),
            },
            {
                "component": "extract",
                "attempt": 2,
                "status": "success",
                "started_at": T0 + timedelta(seconds=2),
                "ended_at": T0 + timedelta(seconds=4),
            },
            {"component": "load", "attempt": 1, "status": "success"},
        ],
    )
    steps = store.executions.get(run.id, with_steps=True).steps
    assert [(s.component_name, s.attempt, s.status) for s in steps] == [
        ("extract", 1, StepStatus.FAILED),
        ("extract", 2, StepStatus.SUCCESS),
        ("load", 1, StepStatus.SUCCESS),
    ]
    assert steps[0].error == "timeout" and steps[1].duration_seconds == 2.0


def test_replaying_attempts_changes_nothing_and_status_moves_forward(store, factory):
    job = factory.job()
    factory.execution(job.name, run_id="r")
    store.executions.record_attempt(
        "dagster", "r", {"component": "load", "attempt": 1, "status": "success"}
    )
    store.executions.record_attempt(
        "dagster", "r", {"component": "load", "attempt": 1, "status": "running", "started_at": T0}
    )
    store.executions.record_attempt(
        "dagster", "r", {"component": "load", "attempt": 1, "status": "success"}
    )
    (attempt,) = store.executions.attempts(store.executions.find("dagster", "r").id)
    assert attempt.status is StepStatus.SUCCESS
    assert attempt.started_at is None  # settled: a late "running" adds nothing


def test_an_attempt_for_an_unknown_run_or_component_is_refused(store, factory):
    job = factory.job()
    with pytest.raises(NotFoundError):
        store.executions.record_attempt(
            "dagster", "nope", {"component": "load", "attempt": 1, "status": "running"}
        )
    factory.execution(job.name, run_id="r")
    with pytest.raises(NotFoundError):
        store.executions.record_attempt(
            "dagster", "r", {"component": "ghost", "attempt": 1, "status": "running"}
        )


def test_the_same_run_id_under_another_job_is_a_conflict(store, factory):
    first, second = factory.job(), factory.job()
    factory.execution(first.name, run_id="shared")
    with pytest.raises(ConflictError):
        factory.execution(second.name, run_id="shared")


def test_run_ids_are_scoped_by_orchestrator(store, factory):
    job = factory.job()
    store.executions.upsert(_run(job.name, "same", status="running"))
    store.executions.upsert({**_run(job.name, "same", status="running"), "orchestrator": "airflow"})
    assert len(store.executions.list()) == 2
    with pytest.raises(ConflictError):
        store.executions.resolve("same")


def test_runs_are_found_by_store_id_or_orchestrator_run_id(store, factory):
    job = factory.job()
    run = factory.execution(job.name, run_id="6f1c-dagster-uuid")
    assert store.executions.resolve("6f1c-dagster-uuid").id == run.id
    assert store.executions.resolve(str(run.id)).external_run_id == "6f1c-dagster-uuid"
    with pytest.raises(NotFoundError):
        store.executions.resolve("nothing")


def test_run_config_is_stored_masked(store, factory):
    job = factory.job()
    run = store.executions.upsert(
        _run(
            job.name, status="queued", run_config={"ops": {"load": {"config": {"password": "pw"}}}}
        )
    )
    assert run.run_config["ops"]["load"]["config"]["password"] == MASK
    assert store.executions.get(run.id).model_dump()["run_config"]["ops"]["load"]["config"] == {
        "password": MASK
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"status": "running", "started_at": "2026-01-01T00:00:00"}, "started_at"),
        ({"status": "running", "orchestrator": "cron"}, "orchestrator"),
        ({"status": "running", "external_run_id": ""}, "external_run_id"),
        ({"status": "running", "error": "x\x00"}, "error"),
        (
            {"status": "success", "started_at": T0, "ended_at": T0 - timedelta(seconds=1)},
            "ended_at",
        ),
    ],
)
def test_invalid_run_events_are_rejected_naming_the_field(store, factory, fields, field):
    job = factory.job()
    with pytest.raises(ValidationError) as caught:
        store.executions.upsert({**_run(job.name), **fields})
    assert caught.value.field == field
    assert store.executions.list() == []


def test_listing_pages_newest_first_with_a_stable_cursor(store, factory):
    job = factory.job()
    for i in range(5):
        factory.execution(job.name, run_id=f"r{i}", status="success" if i % 2 else "failed")
    first_page = store.executions.list(job=job.name, limit=2)
    second_page = store.executions.list(job=job.name, limit=2, before_id=first_page[-1].id)
    assert [r.external_run_id for r in first_page + second_page] == ["r4", "r3", "r2", "r1"]
    assert {r.external_run_id for r in store.executions.list(status="failed")} == {"r0", "r2", "r4"}


def test_a_new_runs_attempts_are_each_audited_as_created_and_a_replay_adds_nothing(store, factory):
    job = factory.job()
    steps = [
        {"component": "extract", "attempt": 1, "status": "failed", "error": "timeout"},
        {"component": "extract", "attempt": 2, "status": "success", "started_at": T0},
        {"component": "load", "attempt": 1, "status": "success"},
    ]
    run = store.executions.upsert(_run(job.name, status="success"), steps=steps)
    created = store.audit.list(entity_type="component_execution", action="create")
    assert sorted(e.entity_key for e in created) == [
        "dagster:run-1/extract#1",
        "dagster:run-1/extract#2",
        "dagster:run-1/load#1",
    ]
    assert {e.after["error"] for e in created} == {"timeout", None}
    audited = len(store.audit.list(limit=1000))
    again = store.executions.upsert(_run(job.name, status="success"), steps=steps)
    assert again == run and len(store.audit.list(limit=1000)) == audited


def test_a_new_run_given_the_same_attempt_twice_merges_them_forward(store, factory):
    job = factory.job()
    run = store.executions.upsert(
        _run(job.name, status="success"),
        steps=[
            {"component": "load", "attempt": 1, "status": "running", "started_at": T0},
            {"component": "load", "attempt": 1, "status": "success"},
        ],
    )
    (attempt,) = run.steps
    assert attempt.status is StepStatus.SUCCESS and attempt.started_at == T0


def test_a_new_run_with_an_unknown_component_records_nothing(store, factory):
    job = factory.job()
    with pytest.raises(NotFoundError):
        store.executions.upsert(
            _run(job.name, status="success"),
            steps=[{"component": "nope", "attempt": 1, "status": "success"}],
        )
    assert store.executions.find("dagster", "run-1") is None


def test_recorded_state_gives_status_and_last_change_of_the_runs_the_store_holds(store, factory):
    job = factory.job()
    running = factory.execution(job.name, run_id="a")
    done = factory.finished_run(job.name, run_id="b")
    factory.execution(job.name, run_id="a", orchestrator="airflow")
    state = store.executions.recorded_state("dagster", ["a", "b", "unknown", "x" * 300])
    assert state == {
        "a": (ExecutionStatus.RUNNING, running.updated_at),
        "b": (ExecutionStatus.SUCCESS, done.updated_at),
    }
    assert store.executions.recorded_state("dagster", []) == {}
