"""Dagster jobs built from stored jobs: graph, retries, executor, config, tags, isolation."""

from pathlib import Path

import dagster as dg
import pytest

from dagster_defs.jobs import build_jobs
from etl_meta.catalog import take_snapshot
from tests.dagster.support import SEEN_CONFIG, chain_job, dagster_env, definitions, run
from tests.plugins import declaring_worker_types


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


def test_one_job_per_stored_job_with_the_dependency_graph(store, instance):
    chain_job(store)
    job = definitions(store).resolve_job_def("chain")
    graph = job.graph
    assert {n.name for n in graph.nodes} == {"a", "b", "c"}
    assert {n.definition.name for n in graph.nodes} == {"etl_meta__test_add"}
    upstream = {
        output.node_name
        for output in graph.dependency_structure.input_to_upstream_outputs_for_node("b")[
            graph.node_named("b").get_input("upstream")
        ]
    }
    assert upstream == {"a", "c"}


def test_retries_executor_tags_and_description_come_from_the_store(store, instance):
    chain_job(
        store,
        num_of_retries=3,
        strategy_type="parallel",
        max_concurrency=2,
        tags={"team": "data"},
        description="Sums things",
    )
    job = definitions(store).resolve_job_def("chain")
    assert job.graph.node_named("b") and job._op_retry_policy.max_retries == 3
    assert job.executor_def.name == "multiprocess"
    assert job.executor_def.config_schema is not None
    assert job.tags["team"] == "data"
    assert job.tags["etl_meta/job"] == "chain" and job.tags["etl_meta/revision"] == "1"
    assert job.description.startswith("Sums things")
    store.jobs.update("chain", {"strategy_type": "sequential", "num_of_retries": 0})
    job = definitions(store).resolve_job_def("chain")
    assert job.executor_def.name == "in_process" and job._op_retry_policy is None
    assert job.tags["etl_meta/revision"] == "2"


def test_a_code_location_may_name_the_executor_of_parallel_jobs_only(store, instance):
    """``parallel_executor`` (dagster-celery's, say) replaces the multiprocess executor of
    parallel jobs; sequential jobs keep running in-process."""
    chain_job(store, strategy_type="parallel", max_concurrency=2)
    chain_job(store, name="serial", strategy_type="sequential")
    elsewhere = dg.executor(name="elsewhere")(lambda _context: dg.in_process_executor)
    jobs, errors = build_jobs(take_snapshot(store), parallel_executor=elsewhere)
    assert errors == []
    by_name = {job.name: job.executor_def.name for job in jobs}
    assert by_name == {"chain": "elsewhere", "serial": "in_process"}


def test_a_step_that_fails_once_succeeds_on_retry_with_the_stored_secret(store, instance):
    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance)
    assert result.success
    assert result.output_for_node("b").value == 111
    assert SEEN_CONFIG["b"]["password"] == "pw-secret"  # resolved at execution time
    stats = {s.step_key: s.attempts for s in instance.get_run_step_stats(result.run_id)}
    assert stats == {"a": 1, "c": 1, "b": 2}


def test_the_launchpad_config_is_masked_and_a_partial_launch_config_merges(store, instance):
    chain_job(store)
    job = definitions(store).resolve_job_def("chain")
    assert job.run_config["ops"]["b"]["config"] == {"n": 100, "password": "***", "fail_first": 1}
    assert "pw-secret" not in str(job.run_config)
    result = run(job, instance, run_config={"ops": {"a": {"config": {"n": 5}}}})
    assert result.success
    assert result.output_for_node("b").value == 115  # a=5 (launch), c=10, b=100 (stored)
    assert SEEN_CONFIG["b"]["password"] == "pw-secret"
    assert "pw-secret" not in str(instance.get_run_by_id(result.run_id).run_config)


def test_a_run_uses_the_snapshot_even_if_the_store_changed_since_load(store, instance):
    chain_job(store)
    job = definitions(store).resolve_job_def("chain")
    store.components.update("chain", "a", {"configuration": {"n": 2}})
    store.components.archive("chain", "b")  # after loading: the snapshot still has b
    result = run(job, instance)
    assert result.success
    assert result.output_for_node("b").value == 111  # a ran with config version 1 (n=1)


def test_disabled_components_are_bridged_and_archived_ones_left_out(store, instance):
    store.jobs.create(
        {
            "name": "bridge",
            "components": [
                {"name": "first", "component_type": "test.add", "configuration": {"n": 1}},
                {"name": "middle", "component_type": "test.add", "depends_on": ["first"]},
                {"name": "last", "component_type": "test.add", "depends_on": ["middle"]},
            ],
        }
    )
    store.components.update("bridge", "middle", {"status": "disabled"})
    job = definitions(store).resolve_job_def("bridge")
    assert {n.name for n in job.graph.nodes} == {"first", "last"}
    result = run(job, instance)
    assert result.success and result.output_for_node("last").value == 1


def test_an_unknown_component_type_fails_only_its_job_and_names_it(store, instance):
    chain_job(store)
    with declaring_worker_types(store, "no.such_type") as declaring:
        declaring.jobs.create(
            {
                "name": "broken",
                "components": [{"name": "mystery", "component_type": "no.such_type"}],
            }
        )
    jobs, errors = build_jobs(take_snapshot(store))
    assert [j.name for j in jobs] == ["chain"]
    assert [(e.job, e.component) for e in errors] == [("broken", "mystery")]
    assert "no.such_type" in str(errors[0])
    defs = definitions(store)
    assert "broken: " in str(defs.metadata["etl_meta/jobs_not_loaded"].value) or any(
        "broken.mystery" in str(item) for item in defs.metadata["etl_meta/jobs_not_loaded"].value
    )
    dg.Definitions.validate_loadable(defs)


def test_file_logging_writes_each_run_to_its_own_file_recorded_on_the_execution(
    store, instance, tmp_path
):
    chain_job(store, file_logging=True)
    result = run(definitions(store).resolve_job_def("chain"), instance)
    execution = store.executions.find("dagster", result.run_id)
    assert execution.log_path == str(tmp_path / "logs" / "chain" / f"{result.run_id}.log")
    text = Path(execution.log_path).read_text(encoding="utf-8")
    assert "simulated outage in b" in text  # the retried attempt's error is in the file
    store.jobs.update("chain", {"file_logging": False})
    quiet = run(definitions(store).resolve_job_def("chain"), instance)
    assert store.executions.find("dagster", quiet.run_id).log_path is None
