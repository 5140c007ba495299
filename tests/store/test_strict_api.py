"""The store's input is strict: unknown keys and values of the wrong type are refused, not dropped
or converted, and a refused call writes nothing (no row, no audit event)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from etl_meta import MetadataStore
from etl_meta.errors import ValidationError
from etl_meta.models import (
    ComponentCreate,
    DataclassCreate,
    ExecutionUpsert,
    Job,
    JobCreate,
    JobUpdate,
    MetricPoint,
    RunRequestCreate,
    StepAttemptUpsert,
)
from etl_meta.models.base import InputModel, mapper_registry
from tests.factories import T0, unique

#: Integers a caller might hope the store converts: it refuses each, naming the field.
NOT_INTEGERS = [True, "3", 3.0]
#: Booleans likewise.
NOT_BOOLEANS = [1, "true"]


def refusal(call: Callable[[], Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value


def assert_unknown_key(error: ValidationError, field: str, hint: str | None) -> None:
    assert error.field == field
    message = error.problems[0].message
    if hint is None:
        assert message == "unknown key"
    else:
        assert message == f"unknown key (did you mean {hint!r}?)"


@contextmanager
def nothing_written(store: MetadataStore) -> Iterator[None]:
    """The block must write no audit event (every change through the store writes one)."""
    before = [event.id for event in store.audit.list(limit=1000)]
    yield
    assert [event.id for event in store.audit.list(limit=1000)] == before


def job_with_run(factory: Any, store: MetadataStore) -> tuple[str, str]:
    job = factory.job()
    run = factory.execution(job.name)
    return job.name, run.external_run_id


# -- unknown keys -------------------------------------------------------------------------------


def test_an_unknown_job_key_is_refused_with_a_hint_and_no_job_is_created(store):
    name = unique("job")
    with nothing_written(store):
        error = refusal(lambda: store.jobs.create({"name": name, "retries": 3}))
    assert_unknown_key(error, "retries", "num_of_retries")
    assert error.entity == "job"
    assert not store.jobs.exists(name)


def test_an_unknown_key_in_a_component_given_with_its_job_is_named_under_components(store):
    name = unique("job")
    component = {"name": "extract", "component_type": "read_csv", "config": {"path": "a.csv"}}
    with nothing_written(store):
        error = refusal(lambda: store.jobs.create({"name": name, "components": [component]}))
    assert_unknown_key(error, "components.0.config", "configuration")
    assert not store.jobs.exists(name)


def test_an_unknown_key_without_a_close_field_gets_no_hint(store):
    error = refusal(lambda: store.jobs.create({"name": unique("job"), "zzz": 1}))
    assert_unknown_key(error, "zzz", None)


def test_an_unknown_key_that_is_not_a_word_is_escaped_in_the_field(store):
    # The key is the caller's text: printed raw, "\x1b[2J" would clear the terminal.
    error = refusal(lambda: store.jobs.create({"name": unique("job"), "\x1b[2J": 1}))
    assert error.field == '"\\u001b[2J"'
    assert "\x1b" not in str(error)


def test_every_unknown_key_is_listed(store):
    error = refusal(lambda: store.jobs.create({"name": unique("job"), "retries": 3, "zzz": 1}))
    assert sorted(problem.field for problem in error.problems) == ["retries", "zzz"]


def test_a_job_update_with_an_unknown_key_changes_nothing(store, factory):
    job = factory.job()
    with nothing_written(store):
        error = refusal(lambda: store.jobs.update(job.name, {"retries": 9}))
    assert_unknown_key(error, "retries", "num_of_retries")
    after = store.jobs.get(job.name)
    assert (after.num_of_retries, after.revision) == (job.num_of_retries, job.revision)


def test_a_component_with_an_unknown_key_is_not_created(store, factory):
    job = factory.job(components=[])
    data = {"name": "extract", "component_type": "read_csv", "config": {"path": "a.csv"}}
    with nothing_written(store):
        error = refusal(lambda: store.components.create(job.name, data))
    assert_unknown_key(error, "config", "configuration")
    assert store.components.list(job.name) == []


def test_a_component_update_with_an_unknown_key_changes_nothing(store, factory):
    job = factory.job()
    with nothing_written(store):
        error = refusal(lambda: store.components.update(job.name, "extract", {"descripton": "x"}))
    assert_unknown_key(error, "descripton", "description")
    assert store.components.get(job.name, "extract").description is None


def test_a_dataclass_with_an_unknown_key_is_not_created(store):
    name = unique("dc")
    with nothing_written(store):
        error = refusal(lambda: store.dataclasses.create({"name": name, "schema_defintion": {}}))
    assert_unknown_key(error, "schema_defintion", "schema_definition")
    assert store.dataclasses.list(include_archived=True) == []


def test_a_dataclass_update_with_an_unknown_key_changes_nothing(store, factory):
    dc = factory.dataclass()
    with nothing_written(store):
        error = refusal(lambda: store.dataclasses.update(dc.name, {"validation_rule": {}}))
    assert_unknown_key(error, "validation_rule", "validation_rules")
    assert store.dataclasses.get(dc.name).version == dc.version


def test_a_run_event_with_an_unknown_key_is_not_recorded(store, factory):
    job = factory.job()
    run_id = unique("run")
    data = {
        "job": job.name,
        "orchestrator": "dagster",
        "external_run_id": run_id,
        "status": "running",
        "started": T0,
    }
    with nothing_written(store):
        error = refusal(lambda: store.executions.upsert(data))
    assert_unknown_key(error, "started", "started_at")
    assert error.entity == "execution"
    assert store.executions.find("dagster", run_id) is None


def test_a_step_with_an_unknown_key_rejects_its_whole_run_event(store, factory):
    job = factory.job()
    run_id = unique("run")
    run = {
        "job": job.name,
        "orchestrator": "dagster",
        "external_run_id": run_id,
        "status": "queued",
    }
    step = {"component": "extract", "attempt": 1, "status": "running", "atempt": 2}
    with nothing_written(store):
        error = refusal(lambda: store.executions.upsert(run, steps=[step]))
    assert_unknown_key(error, "steps.0.atempt", "attempt")
    assert store.executions.find("dagster", run_id) is None


def test_a_recorded_attempt_with_an_unknown_key_is_not_recorded(store, factory):
    _job, run_id = job_with_run(factory, store)
    step = {"component": "extract", "attempt": 1, "status": "running", "eror": "x"}
    with nothing_written(store):
        error = refusal(lambda: store.executions.record_attempt("dagster", run_id, step))
    assert_unknown_key(error, "eror", "error")
    assert store.executions.find("dagster", run_id, with_steps=True).steps == []


def test_a_run_request_with_an_unknown_key_is_not_created(store, factory):
    job = factory.job()
    with nothing_written(store):
        error = refusal(lambda: store.run_requests.create({"job": job.name, "config": {}}))
    assert_unknown_key(error, "config", "run_config")
    assert store.run_requests.list() == []


def test_a_model_instance_is_held_to_the_same_rules_as_a_mapping(store):
    # model_construct skips validation; the store validates what it is handed again.
    job = JobCreate.model_construct(name=unique("job"), num_of_retries=True)
    job.__pydantic_fields_set__.add("num_of_retries")
    error = refusal(lambda: store.jobs.create(job))
    assert error.field == "num_of_retries"


# -- strict integers and booleans ---------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_a_job_refuses_a_non_integer_retry_count(store, value):
    name = unique("job")
    with nothing_written(store):
        error = refusal(lambda: store.jobs.create({"name": name, "num_of_retries": value}))
    assert error.field == "num_of_retries"
    assert "not converted" in error.problems[0].message
    assert not store.jobs.exists(name)


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_a_job_refuses_a_non_integer_concurrency(store, value):
    data = {"name": unique("job"), "strategy_type": "parallel", "max_concurrency": value}
    assert refusal(lambda: store.jobs.create(data)).field == "max_concurrency"


@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
def test_a_job_refuses_a_non_boolean_file_logging(store, value):
    name = unique("job")
    with nothing_written(store):
        error = refusal(lambda: store.jobs.create({"name": name, "file_logging": value}))
    assert error.field == "file_logging"
    assert not store.jobs.exists(name)


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_of_retries", v) for v in NOT_INTEGERS]
    + [("max_concurrency", v) for v in NOT_INTEGERS]
    + [("file_logging", v) for v in NOT_BOOLEANS],
    ids=repr,
)
def test_a_job_update_refuses_values_of_the_wrong_type(store, factory, field, value):
    job = factory.job()
    with nothing_written(store):
        error = refusal(lambda: store.jobs.update(job.name, {field: value}))
    assert error.field == field
    assert store.jobs.get(job.name).revision == job.revision


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
@pytest.mark.parametrize("field", ["job_revision", "config_versions"])
def test_a_run_event_refuses_non_integer_versions(store, factory, field, value):
    job = factory.job()
    run_id = unique("run")
    data = {"job": job.name, "orchestrator": "dagster", "external_run_id": run_id}
    data |= {
        "status": "running",
        field: {"extract": value} if field == "config_versions" else value,
    }
    with nothing_written(store):
        error = refusal(lambda: store.executions.upsert(data))
    assert error.field == ("config_versions.extract" if field == "config_versions" else field)
    assert store.executions.find("dagster", run_id) is None


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
@pytest.mark.parametrize("field", ["attempt", "config_version"])
def test_a_step_attempt_refuses_non_integer_numbers(store, factory, field, value):
    _job, run_id = job_with_run(factory, store)
    step = {"component": "extract", "attempt": 1, "status": "running", field: value}
    with nothing_written(store):
        error = refusal(lambda: store.executions.record_attempt("dagster", run_id, step))
    assert error.field == field
    run = {"job": _job, "orchestrator": "dagster", "external_run_id": run_id, "status": "running"}
    assert refusal(lambda: store.executions.upsert(run, steps=[step])).field == f"steps.0.{field}"


# -- keyword arguments of queries and maintenance -----------------------------------------------

# Query arguments no pydantic model checks: ``etl_meta.validation.strict_int``/``strict_bool``.


def test_an_unknown_keyword_argument_is_a_type_error(store):
    # Keyword arguments are Python's own: misspelt, they fail at the call, before the store.
    with pytest.raises(TypeError, match="entity"):
        store.audit.list(entity="job")
    with pytest.raises(TypeError, match="olderthan"):
        store.maintenance.gc(olderthan=T0)


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_gc_refuses_a_batch_size_that_is_not_an_integer(store, value):
    with nothing_written(store):
        error = refusal(lambda: store.maintenance.gc(older_than=T0, batch_size=value))
    assert error.field == "batch_size"


@pytest.mark.parametrize("role", [1, True, "writr"], ids=repr)
def test_a_store_role_must_be_a_role_name(store_url, role):
    assert refusal(lambda: MetadataStore(store_url, role=role)).field == "role"


def test_a_sync_cursor_name_must_be_a_string(store):
    assert refusal(lambda: store.sync_cursors.set(3, {"a": 1})).field == "name"
    assert store.sync_cursors.list() == []


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_queries_refuse_a_limit_that_is_not_an_integer(store, value):
    assert refusal(lambda: store.audit.list(limit=value)).field == "limit"
    assert refusal(lambda: store.audit.list(before_id=value)).field == "before_id"
    assert refusal(lambda: store.executions.list(limit=value)).field == "limit"
    assert refusal(lambda: store.run_requests.list(limit=value)).field == "limit"


def test_gc_refuses_a_dry_run_flag_that_is_not_a_boolean(store):
    assert refusal(lambda: store.maintenance.gc(older_than=T0, dry_run=1)).field == "dry_run"


def test_a_sync_cursor_value_that_is_not_an_object_is_a_validation_error(store):
    assert refusal(lambda: store.sync_cursors.set("a", [1])).field == "value"


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_the_strict_query_checks_refuse_what_the_models_refuse(value):
    from etl_meta.validation import strict_bool, strict_int

    assert refusal(lambda: strict_int(value, "limit")).field == "limit"
    assert strict_int(3, "limit", minimum=1) == 3
    assert refusal(lambda: strict_int(0, "limit", minimum=1)).problems[0].message == (
        "must be at least 1"
    )
    assert refusal(lambda: strict_bool(1, "dry_run")).field == "dry_run"
    assert strict_bool(False, "dry_run") is False


# -- what stays lenient -------------------------------------------------------------------------


def test_valid_input_of_every_kind_is_still_taken(store, factory):
    job = store.jobs.create(
        {
            "name": unique("job"),
            "num_of_retries": 2,
            "file_logging": True,
            "strategy_type": "PARALLEL",
        }
    )
    assert (job.num_of_retries, job.file_logging, job.strategy_type.value) == (2, True, "parallel")
    job = store.jobs.update(job.name, {"max_concurrency": 4, "file_logging": False})
    assert (job.max_concurrency, job.file_logging) == (4, False)
    factory.dataclass(dataclass_type="table")
    job = factory.job()
    run = store.executions.upsert(
        {
            "job": job.name,
            "orchestrator": "Dagster",
            "external_run_id": unique("run"),
            "status": "RUNNING",
            "job_revision": 1,
            "config_versions": {"extract": 1},
            "started_at": "2026-01-01T00:00:00Z",  # timestamps still parse from ISO text
        },
        steps=[{"component": "extract", "attempt": 1, "status": "running", "config_version": 1}],
    )
    assert run.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert run.steps[0].attempt == 1
    request = store.run_requests.create({"job": job.name, "orchestrator": "AIRFLOW"})
    assert request.orchestrator.value == "airflow"


# -- table models are not input models ---------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        JobCreate,
        JobUpdate,
        ComponentCreate,
        DataclassCreate,
        ExecutionUpsert,
        StepAttemptUpsert,
        MetricPoint,
        RunRequestCreate,
    ],
)
def test_input_models_forbid_unknown_keys(model):
    assert model.model_config.get("extra") == "forbid"


TABLE_MODELS = sorted((m.class_ for m in mapper_registry.mappers), key=lambda c: c.__name__)


@pytest.mark.parametrize("model", TABLE_MODELS, ids=lambda c: c.__name__)
def test_table_models_still_ignore_keys_they_do_not_map(model):
    # Table models are built from validated input and from rows: a key they don't map is not
    # a caller's mistake there, and SQLModel must keep building them as before.
    assert model.model_config.get("extra") != "forbid"
    assert not issubclass(model, InputModel)


def test_a_table_model_takes_validated_input_with_extra_keys_ignored():
    job = Job.model_validate({"name": "j", "num_of_retries": 2, "retries": 9})
    assert job.num_of_retries == 2
    assert not hasattr(job, "retries")
