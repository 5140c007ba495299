"""One outage scenario's outcome, shared by the Dagster and Airflow tests, and the wait for the
store to catch up after recovery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.deployment._outages import (
    OutageWindow,
    lines_naming,
    lines_without_cause,
    store_error_lines,
)
from tests.deployment._pipeline import DESIGNED_FAILURE, FAILING_JOB, JOBS
from tests.deployment._store import DeploymentStore, RunRecord

#: Issue 16's bound: every run, attempt and metric recorded within this long after recovery
#: (or after the run ended, when it ended later).
RECORDED_WITHIN_SECONDS = 120.0
#: How long after recovery the runs launched during an outage may take to end. They are a few
#: seconds of work; one still going after this waited on the store (reported, run by run).
RUNS_END_WITHIN_SECONDS = 120.0


@dataclass
class RunOutcome:
    """One run launched during an outage: what the orchestrator says, what the store holds."""

    job: str
    run_id: str
    status: str  # the orchestrator's final status, in the store's words (success, failed, ...)
    ended_at: float | None  # POSIX time, from the orchestrator
    attempts: dict[str, int]  # attempts per step, from the orchestrator
    step_status: dict[str, str]  # final status per step, in the store's words
    failure: str | None = None  # the orchestrator's error text for a failed run
    record: RunRecord | None = None
    recorded_at: float | None = None  # when the store first held all of it (POSIX time)
    #: ``{(step, attempt): status}`` when the orchestrator keeps a status per attempt (Airflow's
    #: task tries, numbered as Airflow numbers them); ``None``: derived from ``attempts``.
    attempt_status: dict[tuple[str, int], str] | None = None

    def expected_attempts(self) -> dict[tuple[str, int], str]:
        """``{(step, attempt): status}`` the store must hold: every attempt the orchestrator ran,
        the last with the step's final status, the earlier ones failed (or, with
        ``attempt_status``, each with the status the orchestrator recorded for it)."""
        if self.attempt_status is not None:
            return dict(self.attempt_status)
        expected: dict[tuple[str, int], str] = {}
        for step, count in self.attempts.items():
            for attempt in range(1, count + 1):
                last = attempt == count
                expected[(step, attempt)] = self.step_status[step] if last else "failed"
        return expected

    def expected_metrics(self) -> dict[tuple[str, int, str], float]:
        """``{(step, attempt, metric): value}``: the designed metrics of each step's successful
        (last) attempt, as the orchestrator numbered it."""
        return {
            (step, self.attempts.get(step, 0), name): value
            for step, design in JOBS[self.job].items()
            if self.step_status.get(step) == "success"
            for name, value in design.metrics.items()
        }

    def problems(self) -> list[str]:
        """Why the store's record is not (yet) exactly what the orchestrator ran."""
        record = self.record
        if record is None:
            return ["the run is not in the store"]
        found = []
        if record.executions != 1:
            found.append(f"{record.executions} execution rows")
        if record.status != self.status:
            found.append(f"status {record.status!r}, the orchestrator says {self.status!r}")
        attempts = {key: statuses for key, statuses in record.attempts.items()}
        expected = self.expected_attempts()
        if set(attempts) != set(expected):
            missing = sorted(set(expected) - set(attempts))
            extra = sorted(set(attempts) - set(expected))
            found.append(f"attempts missing {missing}, unexpected {extra}")
        for key, status in expected.items():
            if key in attempts and attempts[key] != [status]:
                found.append(f"attempt {key}: {attempts[key]}, expected [{status!r}]")
        metrics = record.metrics
        wanted = self.expected_metrics()
        if set(metrics) != set(wanted):
            missing = sorted(set(wanted) - set(metrics))
            extra = sorted(set(metrics) - set(wanted))
            found.append(f"metrics missing {missing}, unexpected {extra}")
        for key, value in wanted.items():
            if key in metrics and metrics[key] != [value]:
                found.append(f"metric {key}: {metrics[key]}, expected [{value}]")
        return found

    def lag(self, recovered_at: float) -> float | None:
        """Seconds from recovery (or the run's end, if later) to the store holding all of it."""
        if self.recorded_at is None:
            return None
        return max(self.recorded_at - max(recovered_at, self.ended_at or 0.0), 0.0)

    def explain(self) -> str:
        return f"{self.job} run {self.run_id} ({self.status}; failure: {self.failure})"


@dataclass
class OutageScenario:
    """Everything one outage left behind, for the tests to assert on."""

    orchestrator: str
    backend: str
    kind: str
    window: OutageWindow
    runs: list[RunOutcome]
    log_text: str = ""  # logs and event messages of the deployment, for error texts
    log_files: dict[Path, bytes] = field(default_factory=dict)  # for leaks
    max_heartbeat_age: float | None = None  # Airflow: the scheduler's stalest heartbeat
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.orchestrator}/{self.backend}/{self.kind}"

    def failed_because_of_the_store(self) -> list[str]:
        """Runs that did not end as designed (every run succeeds except the designed failure)."""
        return [
            run.explain()
            for run in self.runs
            if run.status != ("failed" if run.job == FAILING_JOB else "success")
        ]

    def attempts_not_as_designed(self) -> list[str]:
        """Steps that took more attempts than designed (a store error failed an attempt)."""
        return attempts_not_as_designed(self.runs)


def not_ended_as_designed(runs: list[RunOutcome]) -> list[str]:
    """Runs whose status is not the designed one, or that failed with another error than the
    designed one (in the orchestrator's words)."""
    found = []
    for run in runs:
        designed = "failed" if run.job == FAILING_JOB else "success"
        if run.status != designed:
            found.append(run.explain())
        elif designed == "failed" and DESIGNED_FAILURE not in (run.failure or ""):
            found.append(f"{run.explain()}: not the designed error")
    return found


def attempts_not_as_designed(runs: list[RunOutcome]) -> list[str]:
    """Steps that took another number of attempts than designed (one lost or run twice)."""
    return [
        f"{run.explain()}: step {step} took {run.attempts.get(step)} attempt(s), "
        f"designed {design.attempts}"
        for run in runs
        for step, design in JOBS[run.job].items()
        if run.attempts.get(step) != design.attempts
    ]


def not_recorded_exactly_once(runs: list[RunOutcome]) -> list[str]:
    """What the store holds differently from the orchestrator's record, run by run."""
    return [f"{run.explain()}: {'; '.join(found)}" for run in runs if (found := run.problems())]


def wait_until_recorded(
    store: DeploymentStore,
    orchestrator: str,
    runs: list[RunOutcome],
    *,
    deadline: float,
    nudge: object = None,
) -> None:
    """Poll the store every second until every run is recorded as it ran, or ``deadline``.

    Sets each run's ``record`` (the last one read) and ``recorded_at``. Never raises on timeout:
    the tests report what is missing. ``nudge``: called (no arguments) on every poll, say to
    start a reconcile pass when the deployment has one to start.
    """
    while True:
        now = time.time()
        records = store.records(orchestrator, [run.run_id for run in runs])
        for run in runs:
            run.record = records.get(run.run_id)
            if run.recorded_at is None and not run.problems():
                run.recorded_at = now
        if all(run.recorded_at is not None for run in runs) or now > deadline:
            return
        if callable(nudge):
            nudge()
        time.sleep(1.0)


def recording_lag(runs: list[RunOutcome]) -> str:
    """How many ``runs`` the store missed, and how long after the last run ended it held all
    the others (as :func:`wait_until_recorded` saw it, polling every second)."""
    lost = sum(1 for run in runs if run.recorded_at is None)
    ended = max((run.ended_at or 0.0 for run in runs), default=0.0)
    recorded = max((run.recorded_at or 0.0 for run in runs), default=0.0)
    return (
        f"{lost} runs not fully recorded; the store held the others "
        f"{max(recorded - ended, 0.0):.1f}s after the last run ended"
    )


#: One line of figures per scenario, printed at the end of the session (conftest.py).
FIGURES: list[str] = []


def summarize(scenario: OutageScenario) -> str:
    """The scenario's figures: runs failed by the outage, records lost or duplicated, lag."""
    lost = sum(1 for run in scenario.runs if run.recorded_at is None)
    duplicated = sum(sum(run.record.duplicates.values()) for run in scenario.runs if run.record)
    lags = [lag for run in scenario.runs if (lag := run.lag(scenario.window.ended_at)) is not None]
    lag = f"max {max(lags):.1f}s" if lags else "none recorded"
    line = (
        f"{scenario.name}: {len(scenario.runs)} runs, "
        f"{len(scenario.failed_because_of_the_store())} failed by the outage, "
        f"{len(scenario.attempts_not_as_designed())} steps with extra attempts, "
        f"{lost} not fully recorded, {duplicated} duplicate rows, "
        f"recording lag after recovery {lag}"
    )
    if scenario.max_heartbeat_age is not None:
        line += f", scheduler heartbeat age max {scenario.max_heartbeat_age:.1f}s"
    FIGURES.append(line)
    return line


def report(scenario: OutageScenario, problems: list[str]) -> str:
    """``problems`` of ``scenario``, with its notes, as one assertion message."""
    notes = "".join(f"\n  note: {note}" for note in scenario.notes)
    return f"{scenario.name}:\n  " + "\n  ".join(problems) + notes


def recording_problems(scenarios: list[OutageScenario]) -> list[str]:
    """Runs not recorded exactly as they ran, or recorded later than the bound after recovery."""
    failures = []
    for scenario in scenarios:
        for run in scenario.runs:
            problems = run.problems()
            if problems:
                failures.append(report(scenario, [f"{run.explain()}: {'; '.join(problems)}"]))
                continue
            lag = run.lag(scenario.window.ended_at)
            if lag is None or lag > RECORDED_WITHIN_SECONDS:
                failures.append(report(scenario, [f"{run.explain()}: recorded {lag}s late"]))
    return failures


def cause_problems(scenarios: list[OutageScenario]) -> list[str]:
    """Outages no logged store error names, and store errors that name no cause at all."""
    failures = []
    for scenario in scenarios:
        lines = store_error_lines(scenario.log_text)
        if not lines_naming(lines, scenario.kind):
            failures.append(
                report(
                    scenario,
                    [f"no logged store error names the {scenario.kind} outage; saw {lines[:5]}"],
                )
            )
        vague = lines_without_cause(lines)
        if vague:
            failures.append(report(scenario, [f"store errors without a cause: {vague[:5]}"]))
    return failures


def designed_failure_problems(scenarios: list[OutageScenario]) -> list[str]:
    """Failed runs whose failure (in the orchestrator and in the store) is not the designed one."""
    failures = []
    for scenario in scenarios:
        for run in scenario.runs:
            if run.status != "failed":
                continue
            if DESIGNED_FAILURE not in (run.failure or ""):
                failures.append(report(scenario, [f"{run.explain()}: not the designed failure"]))
            stored = run.record.error if run.record is not None else None
            if DESIGNED_FAILURE not in (stored or ""):
                failures.append(report(scenario, [f"{run.explain()}: store error {stored!r}"]))
    return failures
