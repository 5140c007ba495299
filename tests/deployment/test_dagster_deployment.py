"""Issue 16 on a real ``dagster dev`` (webserver + daemon + code server, run monitoring on):
the store can never hurt a pipeline.

For each way the store goes away (PostgreSQL: refusing connections, hanging on locked tables;
SQLite: locked by another process) for 30 s, runs are launched through GraphQL as the outage
begins and halfway through it. Then:

* no run fails because of the store: each succeeds, except the job designed to fail;
* no step attempt fails because of the store: each step takes the attempts it was designed to;
* once the store is back, every run, step attempt and metric is recorded exactly once within
  120 s (after recovery, or after the run ended if later);
* the store errors logged while it was away name the cause, and neither the store's password nor
  a component's secret appears in any log or Dagster event log.

And a run whose worker is killed (kill -9) mid-run ends FAILURE in Dagster, then ``failed`` in
the store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.deployment._dagster import DagsterDeployment, pause_until
from tests.deployment._harness import command_line, process_group_of
from tests.deployment._outages import (
    OUTAGE_SECONDS,
    OUTAGES,
    password_leaks,
    store_outage,
)
from tests.deployment._pipeline import (
    AT_OUTAGE_START,
    KILLED_JOB,
    KILLED_STEP,
    MID_OUTAGE,
    SECRET,
)
from tests.deployment._scenario import (
    FIGURES,
    RECORDED_WITHIN_SECONDS,
    RUNS_END_WITHIN_SECONDS,
    OutageScenario,
    cause_problems,
    designed_failure_problems,
    recording_problems,
    report,
    summarize,
    wait_until_recorded,
)
from tests.deployment._store import DeploymentStore

pytestmark = pytest.mark.deployment


@pytest.fixture(scope="module")
def dagster(dagster_store: DeploymentStore) -> Iterator[DagsterDeployment]:
    """One ``dagster dev`` per backend, shared by every scenario of this module."""
    deployment = DagsterDeployment(dagster_store, dagster_store.root)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


def _run_outage(
    dagster: DagsterDeployment, store: DeploymentStore, backend: str, kind: str
) -> OutageScenario:
    log_offset = dagster.server.log_path.stat().st_size
    launched: dict[str, str] = {}
    notes: list[str] = []
    with store_outage(store, kind) as window:
        for job in AT_OUTAGE_START:
            launched[dagster.launch(job)] = job
        pause_until(window.began_at + OUTAGE_SECONDS / 2)
        for job in MID_OUTAGE:
            launched[dagster.launch(job)] = job
        pause_until(window.began_at + OUTAGE_SECONDS)
    try:
        dagster.wait_until_ended(list(launched), timeout=RUNS_END_WITHIN_SECONDS)
    except AssertionError as exc:  # reported by the tests, run by run
        notes.append(str(exc)[:2000])
    runs = [run.outcome() for run in dagster.facts(launched).values()]
    for run in runs:
        if run.ended_at is None:  # where it waits: its last events
            last = dagster.event_messages([run.run_id]).splitlines()[-6:]
            notes.append(f"{run.explain()} still going; last events: {last}")
    ended = max((run.ended_at or 0.0 for run in runs), default=0.0)
    deadline = max(window.ended_at, ended) + RECORDED_WITHIN_SECONDS
    wait_until_recorded(store, "dagster", runs, deadline=deadline)
    with dagster.server.log_path.open("rb") as log:
        log.seek(log_offset)
        log_text = log.read().decode("utf-8", errors="replace")
    scenario = OutageScenario(
        orchestrator="dagster",
        backend=backend,
        kind=kind,
        window=window,
        runs=runs,
        log_text=log_text + "\n" + dagster.event_messages(list(launched)),
        log_files=dagster.log_files(),
        notes=notes,
    )
    summarize(scenario)
    return scenario


@pytest.fixture(scope="module")
def outages(
    backend: str, dagster: DagsterDeployment, dagster_store: DeploymentStore
) -> list[OutageScenario]:
    """Every outage of this backend, one after the other, on the same deployment."""
    return [_run_outage(dagster, dagster_store, backend, kind) for kind in OUTAGES[backend]]


def test_no_run_launched_during_a_store_outage_fails_because_of_the_store(
    outages: list[OutageScenario],
) -> None:
    failures = [report(s, bad) for s in outages if (bad := s.failed_because_of_the_store())]
    assert not failures, "\n".join(failures)


def test_the_run_designed_to_fail_fails_with_its_own_error_in_dagster_and_in_the_store(
    outages: list[OutageScenario],
) -> None:
    failures = designed_failure_problems(outages)
    assert not failures, "\n".join(failures)


def test_no_step_attempt_fails_because_of_the_store(outages: list[OutageScenario]) -> None:
    failures = [report(s, bad) for s in outages if (bad := s.attempts_not_as_designed())]
    assert not failures, "\n".join(failures)


def test_every_run_attempt_and_metric_is_recorded_exactly_once_soon_after_recovery(
    outages: list[OutageScenario],
) -> None:
    failures = recording_problems(outages)
    assert not failures, "\n".join(failures)


def test_store_errors_logged_during_the_outage_name_the_cause(
    outages: list[OutageScenario],
) -> None:
    failures = cause_problems(outages)
    assert not failures, "\n".join(failures)


def test_no_password_or_secret_appears_in_any_log_or_event_log(
    outages: list[OutageScenario], dagster_store: DeploymentStore
) -> None:
    for scenario in outages:
        for secret in (dagster_store.password, SECRET):
            leaked = password_leaks(scenario.log_files, secret)
            assert not leaked, f"{scenario.name}: a secret appears in {leaked}"


# -- kill -9 of a run worker ---------------------------------------------------------------------


@dataclass
class KilledRun:
    run_id: str
    pid: int
    command: str
    dagster_status: str
    store_status: str | None
    store_attempts: dict[tuple[str, int], list[str]]
    recorded_after: float | None


@pytest.fixture(scope="module")
def killed_run(dagster: DagsterDeployment, dagster_store: DeploymentStore) -> Iterator[KilledRun]:
    """A run of the sleeping job whose worker process the test kills with SIGKILL mid-step."""
    run_id = dagster.launch(KILLED_JOB)
    pid = dagster.wait_for_pid_file(run_id)
    # The step runs in the run worker (in-process executor): one of the deployment's processes.
    try:
        command = command_line(pid)
        assert process_group_of(pid) == dagster.process_group, (pid, command)
    finally:
        os.kill(pid, signal.SIGKILL)
    ended = dagster.wait_until_ended([run_id], timeout=120)[run_id]
    ended_at = time.time()
    deadline = ended_at + RECORDED_WITHIN_SECONDS
    record = None
    recorded_after = None
    while time.time() < deadline:
        record = dagster_store.records("dagster", [run_id]).get(run_id)
        if record is not None and record.status == "failed":
            recorded_after = time.time() - ended_at
            break
        time.sleep(1.0)
    FIGURES.append(
        f"dagster/{dagster_store.backend}/kill -9: Dagster {ended}, store "
        f"{record.status if record else None}"
        + (f" {recorded_after:.1f}s after the run ended" if recorded_after is not None else "")
    )
    yield KilledRun(
        run_id=run_id,
        pid=pid,
        command=command,
        dagster_status=ended,
        store_status=record.status if record else None,
        store_attempts=record.attempts if record else {},
        recorded_after=recorded_after,
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_run_whose_worker_is_killed_ends_failure_in_dagster(killed_run: KilledRun) -> None:
    assert killed_run.dagster_status == "FAILURE", killed_run


def test_a_run_whose_worker_is_killed_ends_failed_in_the_store(killed_run: KilledRun) -> None:
    assert killed_run.store_status == "failed", killed_run
    attempts = killed_run.store_attempts.get((KILLED_STEP, 1), [])
    # The killed step is recorded once, and not as still running.
    assert len(attempts) == 1 and attempts[0] in {"failed", "canceled"}, killed_run
