"""Once a run or an attempt is terminal it is settled: late and contradicting events change
nothing (row, ``updated_at``, audit trail); only the final event itself may fill empty fields."""

from __future__ import annotations

from datetime import timedelta

from etl_meta import ExecutionStatus, MetadataStore, StepStatus
from tests.factories import T0, Factory


def _run(job: str, status: str, **fields) -> dict:
    return {
        "job": job,
        "orchestrator": "dagster",
        "external_run_id": "settled-run",
        "status": status,
        **fields,
    }


def _events(store: MetadataStore) -> int:
    return len(store.audit.list(limit=1000))


def test_a_late_failure_after_success_changes_nothing(store, factory: Factory):
    job = factory.job().name
    done = store.executions.upsert(_run(job, "success", started_at=T0))
    count = _events(store)
    late = store.executions.upsert(
        _run(job, "failed", error="late boom", ended_at=T0 + timedelta(seconds=9))
    )
    assert late == done
    assert late.status is ExecutionStatus.SUCCESS and late.error is None and late.ended_at is None
    assert _events(store) == count


def test_a_late_running_event_after_a_terminal_status_changes_nothing(store, factory: Factory):
    job = factory.job().name
    done = store.executions.upsert(_run(job, "canceled", started_at=T0))
    count = _events(store)
    for _ in range(2):
        late = store.executions.upsert(
            _run(job, "running", log_path="/late.log", config_versions={"load": 1})
        )
    assert late == done and late.log_path is None and late.config_versions is None
    assert _events(store) == count


def test_the_final_event_again_only_fills_empty_fields(store, factory: Factory):
    job = factory.job().name
    store.executions.upsert(_run(job, "failed", started_at=T0))
    ended = T0 + timedelta(seconds=4)
    filled = store.executions.upsert(_run(job, "failed", error="boom", ended_at=ended))
    assert (filled.error, filled.ended_at) == ("boom", ended)
    (event,) = store.audit.list(entity_type="execution", action="update")
    assert event.before == {"error": None, "ended_at": None}
    count = _events(store)
    again = store.executions.upsert(
        _run(job, "failed", error="other", ended_at=ended + timedelta(seconds=1), started_at=ended)
    )
    assert again == filled  # set fields stay as first recorded
    assert _events(store) == count


def test_a_settled_attempt_ignores_late_and_contradicting_events(store, factory: Factory):
    job = factory.job().name
    store.executions.upsert(_run(job, "running", started_at=T0))
    attempt = {"component": "load", "attempt": 1}
    done = store.executions.record_attempt(
        "dagster", "settled-run", {**attempt, "status": "success", "started_at": T0}
    )
    count = _events(store)
    for late in (
        {**attempt, "status": "failed", "error": "late boom"},
        {**attempt, "status": "running", "config_version": 1},
        {**attempt, "status": "success", "started_at": T0 + timedelta(seconds=1)},
    ):
        recorded = store.executions.record_attempt("dagster", "settled-run", late)
        assert recorded == done
    assert recorded.status is StepStatus.SUCCESS and recorded.error is None
    assert _events(store) == count


def test_late_attempts_in_a_run_upsert_change_nothing(store, factory: Factory):
    job = factory.job().name
    step = {"component": "extract", "attempt": 1}
    store.executions.upsert(
        _run(job, "success"), steps=[{**step, "status": "skipped", "started_at": T0}]
    )
    count = _events(store)
    run = store.executions.upsert(
        _run(job, "failed", error="late"), steps=[{**step, "status": "failed", "error": "late"}]
    )
    (stored,) = run.steps or []
    assert run.status is ExecutionStatus.SUCCESS and run.error is None
    assert stored.status is StepStatus.SKIPPED and stored.error is None
    assert _events(store) == count
