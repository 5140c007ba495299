"""The store as a Dagster resource, for hand-written ops too."""

import dagster as dg
import pytest

from dagster_defs.resources import EtlMetaResource
from etl_meta import StoreUnavailableError
from etl_meta.store.metrics import MetricsAPI
from tests.dagster.support import chain_job, dagster_env

CAPTURED: dict = {}


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


@dg.op(config_schema=dg.Permissive())
def b(context: dg.OpExecutionContext, etl_meta: EtlMetaResource) -> None:
    CAPTURED["identity"] = etl_meta.component(context)
    CAPTURED["config"] = etl_meta.component_config(context)
    CAPTURED["first"] = etl_meta.log_metrics(context, {"rows": 5, "nulls": 0})
    CAPTURED["second"] = etl_meta.log_metrics(context, {"rows": 6})
    if context.op_config.get("bad"):
        etl_meta.log_metrics(context, {"ok": 1.0, "broken": float("nan")})


def _job() -> dg.JobDefinition:
    @dg.job(name="chain", resource_defs={"etl_meta": EtlMetaResource()})
    def chain():
        b()

    return chain


def test_a_hand_written_op_gets_identity_config_and_records_metrics(store, instance):
    chain_job(store)
    result = _job().execute_in_process(
        instance=instance, run_config={"ops": {"b": {"config": {"n": 5, "password": "***"}}}}
    )
    assert result.success
    assert CAPTURED["identity"] == {
        "job": "chain",
        "component": "b",
        "attempt": 1,
        "run_id": result.run_id,
    }
    assert CAPTURED["config"] == {"n": 5, "password": "pw-secret", "fail_first": 1}
    execution = store.executions.find("dagster", result.run_id)
    points = [(p.name, p.step, p.value) for p in store.metrics.list(execution_id=execution.id)]
    assert sorted(points) == [("nulls", 0, 0.0), ("rows", 0, 5.0), ("rows", 1, 6.0)]
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    materialized = output.event_specific_data.metadata
    assert materialized["rows"].value == 6.0 and materialized["nulls"].value == 0.0


def test_a_rejected_metrics_call_writes_none_of_its_points(store, instance):
    chain_job(store)
    result = _job().execute_in_process(
        instance=instance,
        run_config={"ops": {"b": {"config": {"bad": True}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "points.1.value" in (failure.cause or failure).message
    execution = store.executions.find("dagster", result.run_id)
    names = {p.name for p in store.metrics.list(execution_id=execution.id)}
    assert names == {"rows", "nulls"}  # the earlier calls stand; the bad one left nothing


def test_transient_store_errors_are_retried_and_never_duplicate(store, instance, monkeypatch):
    chain_job(store)
    calls = {"n": 0}
    original = MetricsAPI.record_to  # an op's recorder writes through record_to

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise StoreUnavailableError("the store is unavailable: connection reset")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MetricsAPI, "record_to", flaky)
    result = _job().execute_in_process(instance=instance)
    assert result.success and calls["n"] == 4  # 2 failures, then the two calls of the op
    execution = store.executions.find("dagster", result.run_id)
    assert len(store.metrics.list(execution_id=execution.id)) == 3


def test_the_resource_refuses_use_outside_execution():
    with pytest.raises(dg.DagsterInvariantViolationError):
        EtlMetaResource().store  # noqa: B018


@dg.op
def tries_to_change_definitions(context: dg.OpExecutionContext, etl_meta: EtlMetaResource):
    etl_meta.component_config(context)  # allowed: a writer reads the secrets it runs with
    etl_meta.store.jobs.update("chain", {"num_of_retries": 9})


def test_an_op_cannot_change_definitions_and_its_reads_are_audited_as_the_run(store, instance):
    chain_job(store)

    @dg.job(name="chain", resource_defs={"etl_meta": EtlMetaResource()})
    def chain():
        tries_to_change_definitions.alias("b")()

    result = chain.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    error = failure.cause or failure  # Dagster wraps the op's exception
    assert error.cls_name == "PermissionDeniedError"
    assert "role 'writer' may not jobs.update" in error.message
    assert store.jobs.get("chain").num_of_retries != 9
    (decrypt,) = store.audit.list(action="decrypt")
    assert (decrypt.actor, decrypt.entity_key) == (f"dagster:{result.run_id}", "chain.b")
    assert decrypt.after == {"version": 1, "fields": ["password"]}


@dg.op
def fails_in_colour(context: dg.OpExecutionContext, etl_meta: EtlMetaResource):
    raise ValueError("\x1b[31mschema mismatch\x1b[0m in column \x00amount")


def test_an_error_with_terminal_colours_is_recorded_readable(store, instance):
    from dagster_defs.jobs import TAG_JOB
    from dagster_defs.recording import record_run

    chain_job(store)

    @dg.job(name="chain", resource_defs={"etl_meta": EtlMetaResource()}, tags={TAG_JOB: "chain"})
    def chain():
        fails_in_colour.alias("b")()

    result = chain.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    # The store refuses control characters in text; the recorder cleans, so the run is recorded.
    record_run(store, instance, result.run_id)
    execution = store.executions.find("dagster", result.run_id, with_steps=True)
    (step,) = execution.steps
    assert step.status == "failed"
    assert step.error == "ValueError: schema mismatch in column amount"


def test_runs_in_one_process_share_the_store_engine_and_each_checks_the_schema(
    store, instance, monkeypatch
):
    from etl_meta import schema

    chain_job(store)
    checks: list[object] = []
    real = schema.check_schema
    monkeypatch.setattr(
        schema, "check_schema", lambda engine: (checks.append(engine), real(engine))
    )
    for _ in range(2):
        assert _job().execute_in_process(instance=instance).success
    assert len(checks) == 2  # every open still refuses a database at another schema revision
    assert checks[0] is checks[1]  # the same engine, its connections reused (db.shared_engine)
