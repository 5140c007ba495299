"""Run requests: idempotent by key, pending → launched → terminal, never back."""

import pytest

from etl_meta import ConflictError, RunRequestStatus, ValidationError
from etl_meta.masking import MASK


def test_asking_twice_with_the_same_key_returns_the_first_request(store, factory):
    job = factory.job()
    first = store.run_requests.create({"job": job.name, "request_key": "nightly-2026-01-01"})
    second = store.run_requests.create({"job": job.name, "request_key": "nightly-2026-01-01"})
    assert first.id == second.id
    assert len(store.run_requests.list()) == 1
    assert first.status is RunRequestStatus.PENDING and first.requested_by == store.actor


def test_a_key_reused_for_another_job_is_a_conflict(store, factory):
    a, b = factory.job(), factory.job()
    store.run_requests.create({"job": a.name, "request_key": "k"})
    with pytest.raises(ConflictError):
        store.run_requests.create({"job": b.name, "request_key": "k"})


def test_a_request_is_launched_once_and_finishes_once(store, factory):
    job = factory.job()
    request = store.run_requests.create({"job": job.name})
    launched = store.run_requests.mark_launched(
        request.id, orchestrator="dagster", external_run_id="run-a"
    )
    again = store.run_requests.mark_launched(
        request.id, orchestrator="dagster", external_run_id="run-a"
    )
    assert (
        launched.status is RunRequestStatus.LAUNCHED and again.launched_at == launched.launched_at
    )
    with pytest.raises(ConflictError):
        store.run_requests.mark_launched(
            request.id, orchestrator="dagster", external_run_id="run-b"
        )
    done = store.run_requests.mark_finished(request.id, "success")
    late = store.run_requests.mark_finished(request.id, "failed", error="late")
    assert done.status is late.status is RunRequestStatus.SUCCESS and late.error is None
    assert store.run_requests.list(status="pending") == []


def test_pending_requests_are_listed_oldest_first_per_orchestrator(store, factory):
    job = factory.job()
    any_ = store.run_requests.create({"job": job.name})
    airflow = store.run_requests.create({"job": job.name, "orchestrator": "airflow"})
    dagster = store.run_requests.create({"job": job.name, "orchestrator": "dagster"})
    pending = store.run_requests.list(status="pending", orchestrator="dagster")
    assert [r.id for r in pending] == [any_.id, dagster.id]
    assert airflow.id not in [r.id for r in pending]


def test_run_config_is_masked_in_output_but_available_to_the_launcher(store, factory):
    job = factory.job()
    request = store.run_requests.create({"job": job.name, "run_config": {"api_token": "t0k"}})
    assert request.model_dump()["run_config"] == {"api_token": MASK}
    assert store.run_requests.run_config(request.id) == {"api_token": "t0k"}


def test_archived_jobs_cannot_be_requested(store, factory):
    job = factory.job()
    store.jobs.archive(job.name)
    with pytest.raises(ValidationError):
        store.run_requests.create({"job": job.name})
