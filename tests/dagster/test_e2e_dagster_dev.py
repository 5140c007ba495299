"""End to end under a real ``dagster dev``: launch example jobs through GraphQL, and check that
the run-status sensors (running in the daemon) recorded in the store exactly what Dagster itself
saw — run status, every step's attempts and final status, the flaky step's retry, and metrics.

``daily_sales`` runs with the multiprocess executor (strategy ``parallel``); the job holding the
example's flaky ``fetch_fx_rates`` step fails that step on attempt 1 and succeeds on the retry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest

from etl_meta.models import ExecutionPublic, MetricPublic
from tests.dagster._server import LOCATION, REPOSITORY, wait_for
from tests.dagster.conftest import DagsterDevServer, example_definitions

pytestmark = [
    pytest.mark.slow,
    # dagster_graphql's client still passes variables the way gql 4 deprecates.
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

FLAKY_CALLABLE = "functions.py:fetch_fx_rates"
SIMULATED_ERROR = "simulated transient outage of the FX rates service"


def _flaky_component() -> tuple[str, str, int]:
    """(job, component, number of currencies) of the example's step that fails once."""
    for job in example_definitions().jobs:
        for component in job.components:
            if component.configuration.get("callable") == FLAKY_CALLABLE:
                kwargs = component.configuration.get("kwargs", {})
                return job.name, component.name, len(kwargs.get("currencies", []))
    raise AssertionError(f"examples/pipeline.yaml has no component calling {FLAKY_CALLABLE}")


FLAKY_JOB, FLAKY_COMPONENT, FLAKY_ROWS = _flaky_component()
JOBS = tuple(dict.fromkeys(["daily_sales", FLAKY_JOB]))

# What the store must say for each Dagster outcome (written out here, not imported from the code
# under test).
RUN_STATUS = {"SUCCESS": "success", "FAILURE": "failed", "CANCELED": "canceled"}
STEP_STATUS = {"SUCCESS": "success", "FAILURE": "failed", "SKIPPED": "skipped"}
SENSOR_FOR = {
    "SUCCESS": "etl_meta_on_run_success",
    "FAILURE": "etl_meta_on_run_failure",
    "CANCELED": "etl_meta_on_run_canceled",
}
#: Tags given at launch (as the launchpad or a schedule would): a secret one among them.
LAUNCH_TAGS = {"team": "e2e", "warehouse_token": "e2e-token-secret"}
RUN_TIMEOUT = 120
RECORD_TIMEOUT = 60


@dataclass
class Step:
    """One step as Dagster's own run storage knows it."""

    status: str
    attempts: int
    metrics: dict[str, float] = field(default_factory=dict)  # float metadata of its output


@dataclass
class RunFacts:
    job: str
    run_id: str
    status: str  # Dagster's final run status name
    steps: dict[str, Step]
    execution: ExecutionPublic
    metrics: list[MetricPublic]
    dagster_tags: dict[str, str] = field(default_factory=dict)  # the run's tags in Dagster

    def explain(self) -> str:
        return (
            f"run {self.run_id} of {self.job}: {self.status}; store error: {self.execution.error}"
        )


def _dagster_side(instance: dg.DagsterInstance, run_id: str) -> tuple[dict[str, Step], list[str]]:
    steps = {
        stat.step_key: Step(
            status=stat.status.value if stat.status else "IN_PROGRESS",
            attempts=max(len(stat.attempts_list), 1),
        )
        for stat in instance.get_run_step_stats(run_id)
    }
    outputs = instance.get_records_for_run(run_id, of_type={dg.DagsterEventType.STEP_OUTPUT})
    for record in outputs.records:
        event = record.event_log_entry.dagster_event
        steps[event.step_key].metrics.update(
            {
                name: value.value
                for name, value in event.event_specific_data.metadata.items()
                if isinstance(value, dg.FloatMetadataValue)
            }
        )
    engine = instance.get_records_for_run(run_id, of_type={dg.DagsterEventType.ENGINE_EVENT})
    return steps, [r.event_log_entry.message for r in engine.records]


@pytest.fixture(scope="module")
def runs(dagster_dev: DagsterDevServer) -> dict[str, RunFacts]:
    """Launch every job in ``JOBS`` at once, wait for Dagster, then for the store."""
    server = dagster_dev.server
    assert server.repository_names() == [REPOSITORY]
    client = server.client()
    run_ids = {
        job: client.submit_job_execution(
            job,
            repository_location_name=LOCATION,
            repository_name=REPOSITORY,
            tags={**LAUNCH_TAGS, "launched_job": job},
        )
        for job in JOBS
    }
    terminal = {
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    }

    def finished() -> dict[str, str] | None:
        statuses = {job: client.get_run_status(run_id) for job, run_id in run_ids.items()}
        if all(status in terminal for status in statuses.values()):
            return {job: status.value for job, status in statuses.items()}
        return None

    statuses = wait_for(
        f"runs {run_ids} to end", finished, timeout=RUN_TIMEOUT, on_timeout=server.log_tail
    )

    facts: dict[str, RunFacts] = {}
    with dagster_dev.instance() as instance, dagster_dev.store() as store:
        for job, run_id in run_ids.items():
            status = statuses[job]
            acted = f'Sensor "{SENSOR_FOR[status]}" acted on run status {status} of run {run_id}'

            def recorded(run_id: str = run_id, acted: str = acted) -> Any:
                steps, messages = _dagster_side(instance, run_id)
                # The run-status sensor logs "acted on run" to the run only after its function
                # (which records the run in the store) returned.
                if not any(acted in message for message in messages):
                    return None
                execution = store.executions.find("dagster", run_id, with_steps=True)
                if execution is None or not execution.status.is_terminal:
                    return None
                return execution, steps

            execution, steps = wait_for(
                f"the store to record run {run_id} ({job}) as ended",
                recorded,
                timeout=RECORD_TIMEOUT,
                on_timeout=server.log_tail,
            )
            facts[job] = RunFacts(
                job=job,
                run_id=run_id,
                status=status,
                steps=steps,
                execution=execution,
                metrics=store.metrics.list(execution_id=execution.id),
                dagster_tags=dict(instance.get_run_by_id(run_id).tags),
            )
    return facts


@pytest.mark.parametrize("job", JOBS)
def test_example_job_succeeds_in_dagster(runs: dict[str, RunFacts], job: str) -> None:
    run = runs[job]
    assert run.status == "SUCCESS", run.explain()


@pytest.mark.parametrize("job", JOBS)
def test_store_records_the_run_as_dagster_ended_it(runs: dict[str, RunFacts], job: str) -> None:
    run = runs[job]
    execution = run.execution
    assert execution.job_name == job
    assert execution.external_run_id == run.run_id
    assert execution.status.value == RUN_STATUS[run.status], run.explain()
    assert execution.started_at is not None
    assert execution.ended_at is not None
    assert execution.ended_at >= execution.started_at
    assert (execution.error is None) == (run.status == "SUCCESS"), run.explain()


@pytest.mark.parametrize("job", JOBS)
def test_store_records_the_runs_dagster_tags_masked(runs: dict[str, RunFacts], job: str) -> None:
    run = runs[job]
    expected = {
        key: value
        for key, value in run.dagster_tags.items()
        if not key.startswith(("etl_meta/", "."))  # etl-meta's own, and Dagster's hidden ones
    }
    expected["warehouse_token"] = "***"
    assert run.execution.tags == expected, run.explain()
    assert run.execution.tags["team"] == "e2e" and run.execution.tags["launched_job"] == job


@pytest.mark.parametrize("job", JOBS)
def test_store_has_every_step_attempt_dagster_ran(runs: dict[str, RunFacts], job: str) -> None:
    run = runs[job]
    assert run.steps, f"Dagster has no step stats for {run.explain()}"
    attempts = Counter(step.component_name for step in run.execution.steps)
    assert dict(attempts) == {key: step.attempts for key, step in run.steps.items()}
    for key, step in run.steps.items():
        recorded = sorted(
            (s for s in run.execution.steps if s.component_name == key), key=lambda s: s.attempt
        )
        assert [s.attempt for s in recorded] == list(range(1, step.attempts + 1))
        assert recorded[-1].status.value == STEP_STATUS[step.status], (key, run.explain())
        # Every attempt before the last one failed (that is why there was another).
        assert all(s.status.value == "failed" for s in recorded[:-1]), (key, recorded)
        assert all(s.started_at is not None and s.ended_at is not None for s in recorded)


def test_flaky_component_failed_once_then_succeeded(runs: dict[str, RunFacts]) -> None:
    run = runs[FLAKY_JOB]
    assert run.steps[FLAKY_COMPONENT].attempts == 2, run.steps
    assert run.steps[FLAKY_COMPONENT].status == "SUCCESS"
    first, second = sorted(
        (s for s in run.execution.steps if s.component_name == FLAKY_COMPONENT),
        key=lambda s: s.attempt,
    )
    assert (first.attempt, first.status.value) == (1, "failed")
    assert first.error is not None
    # The user's own error, not Dagster's retry wrapper.
    assert first.error.startswith("ConnectionError: "), first.error
    assert SIMULATED_ERROR in first.error
    assert (second.attempt, second.status.value, second.error) == (2, "success", None)


@pytest.mark.parametrize("job", JOBS)
def test_component_metrics_are_in_the_store(runs: dict[str, RunFacts], job: str) -> None:
    run = runs[job]
    assert run.metrics, f"no metrics in the store for {run.explain()}"
    final_attempt = {c: s.attempts for c, s in run.steps.items()}
    stored: dict[str, dict[str, float]] = {}
    for point in sorted(run.metrics, key=lambda p: (p.attempt, p.step)):
        if point.attempt == final_attempt.get(point.component_name):
            stored.setdefault(point.component_name, {})[point.name] = point.value
    # What each step showed on its Dagster output event is what the store holds for that step.
    shown = {key: step.metrics for key, step in run.steps.items() if step.metrics}
    assert shown, "Dagster shows no metrics on any output"
    for key, metrics in shown.items():
        assert {name: stored.get(key, {}).get(name) for name in metrics} == metrics, key
    if job == FLAKY_JOB:
        flaky = [p for p in run.metrics if p.component_name == FLAKY_COMPONENT]
        assert [(p.attempt, p.name, p.value) for p in flaky] == [(2, "rows", float(FLAKY_ROWS))]
