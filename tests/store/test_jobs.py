"""Jobs: create, read, update, archive, list; validation before any write."""

import pytest

from etl_meta import AlreadyExistsError, NotFoundError, StrategyType, ValidationError
from etl_meta.models import JobCreate


def test_created_job_reads_back_with_defaults_and_utc_timestamps(store):
    job = store.jobs.create({"name": "daily_sales", "tags": {"team": "finance"}})
    assert job.num_of_retries == 0 and job.file_logging is False
    assert job.strategy_type is StrategyType.SEQUENTIAL
    assert job.revision == 1 and job.is_archived is False
    assert job.created_at.utcoffset().total_seconds() == 0
    again = store.jobs.get("daily_sales")
    assert again == job
    assert again.tags == {"team": "finance"}


def test_strategy_type_accepts_any_letter_case_and_member_names(store):
    assert store.jobs.create({"name": "a", "strategy_type": "PARALLEL"}).strategy_type == "parallel"
    assert store.jobs.create(JobCreate(name="b", strategy_type="Sequential")).strategy_type == (
        StrategyType.SEQUENTIAL
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"name": "ok", "num_of_retries": 101}, "num_of_retries"),
        ({"name": "ok", "num_of_retries": -1}, "num_of_retries"),
        ({"name": "ok", "strategy_type": "warp_speed"}, "strategy_type"),
        ({"name": "ok", "description": "nul\x00"}, "description"),
        ({"name": "ok", "max_concurrency": 0}, "max_concurrency"),
        ({"name": "ok", "tags": {"bad key!": "v"}}, 'tags."bad key!".key'),
        ({"num_of_retries": 1}, "name"),
    ],
)
def test_invalid_job_is_rejected_naming_the_field_and_nothing_is_written(store, data, field):
    with pytest.raises(ValidationError) as caught:
        store.jobs.create(data)
    assert caught.value.field == field
    assert store.jobs.list(include_archived=True) == []
    assert store.audit.list() == []


def test_duplicate_job_name_is_rejected(store):
    store.jobs.create({"name": "dup"})
    with pytest.raises(AlreadyExistsError) as caught:
        store.jobs.create({"name": "dup"})
    assert caught.value.entity == "job" and caught.value.key == "dup"


def test_update_changes_only_given_fields_and_bumps_revision(store):
    store.jobs.create({"name": "j", "num_of_retries": 1, "tags": {"env": "dev"}})
    updated = store.jobs.update("j", {"num_of_retries": 3, "tags": {"env": "prod"}})
    assert updated.num_of_retries == 3 and updated.tags == {"env": "prod"}
    assert updated.file_logging is False
    assert updated.revision == 2
    assert updated.updated_at >= updated.created_at


def test_update_to_the_same_values_changes_nothing(store):
    store.jobs.create({"name": "j", "num_of_retries": 1, "tags": {"env": "dev"}})
    events = len(store.audit.list())
    same = store.jobs.update("j", {"num_of_retries": 1, "tags": {"env": "dev"}})
    assert same.revision == 1
    assert len(store.audit.list()) == events


def test_archived_jobs_leave_listings_but_can_be_restored(store):
    store.jobs.create({"name": "keep"})
    store.jobs.create({"name": "old"})
    store.jobs.archive("old")
    assert [j.name for j in store.jobs.list()] == ["keep"]
    assert [j.name for j in store.jobs.list(include_archived=True)] == ["keep", "old"]
    assert store.jobs.restore("old").is_archived is False


def test_jobs_can_be_listed_by_tag(store):
    store.jobs.create({"name": "a", "tags": {"team": "fin", "env": "prod"}})
    store.jobs.create({"name": "b", "tags": {"team": "fin", "env": "dev"}})
    store.jobs.create({"name": "c", "tags": {"team": "ops"}})
    assert [j.name for j in store.jobs.list(tags={"team": "fin"})] == ["a", "b"]
    assert [j.name for j in store.jobs.list(tags={"team": "fin", "env": "prod"})] == ["a"]


def test_unknown_job_raises_not_found(store):
    with pytest.raises(NotFoundError) as caught:
        store.jobs.get("missing")
    assert caught.value.entity == "job"


def test_job_with_components_is_created_atomically(store):
    with pytest.raises(ValidationError) as caught:
        store.jobs.create(
            {
                "name": "atomic",
                "components": [
                    {"name": "a", "component_type": "test.step"},
                    {"name": "b", "component_type": "test.step", "depends_on": ["missing"]},
                ],
            }
        )
    assert caught.value.field == "components.1.depends_on"
    assert not store.jobs.exists("atomic")


def test_latest_execution_of_a_job(store, factory):
    job = factory.job()
    assert store.jobs.latest_execution(job.name) is None
    factory.execution(job.name, run_id="first")
    factory.execution(job.name, run_id="second")
    assert store.jobs.latest_execution(job.name).external_run_id == "second"


def test_latest_executions_of_several_jobs_at_once(store, factory):
    a, b, never = factory.job(), factory.job(), factory.job()
    factory.execution(a.name, run_id="a1")
    factory.execution(a.name, run_id="a2")
    factory.execution(b.name, run_id="b1")
    latest = store.jobs.latest_executions(job for job in (a.name, b.name, never.name))
    assert {name: run.external_run_id for name, run in latest.items()} == {
        a.name: "a2",
        b.name: "b1",
    }
