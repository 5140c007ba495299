"""What each job of pipeline.yaml is designed to do: attempts per step, metrics per attempt.

Written out here (not read from the code under test) so the tests compare the store and the
orchestrators with the design.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECRET = "deploy-test-secret-6c1f"  # the extract step's password in pipeline.yaml
DESIGNED_FAILURE = "designed failure: this step always refuses"  # functions.designed_failure


@dataclass(frozen=True)
class StepDesign:
    """How many attempts a step takes, and the metrics its successful attempt records."""

    attempts: int = 1
    metrics: dict[str, float] = field(default_factory=dict)
    fails: bool = False  # the last attempt fails (by design)


JOBS: dict[str, dict[str, StepDesign]] = {
    "outage_sequential": {
        "extract": StepDesign(metrics={"rows": 3.0, "secret_length": float(len(SECRET))}),
        "enrich": StepDesign(metrics={"batches": 1.0, "rows": 3.0}),
    },
    "outage_parallel": {
        "left": StepDesign(metrics={"rows": 2.0}),
        "flaky": StepDesign(attempts=2, metrics={"rows": 1.0}),
        "joined": StepDesign(metrics={"batches": 2.0, "rows": 3.0}),
    },
    "outage_designed_failure": {"refuse": StepDesign(fails=True)},
}
#: The job whose run fails by design; every other run must succeed.
FAILING_JOB = "outage_designed_failure"
#: Launched when an outage begins, and once more halfway through it.
AT_OUTAGE_START = ("outage_sequential", "outage_parallel", FAILING_JOB)
MID_OUTAGE = ("outage_sequential",)
#: The job whose only step sleeps (and writes its pid) until the test kills it.
KILLED_JOB, KILLED_STEP = "worker_killed", "sleeper"


def expected_attempts(job: str) -> dict[tuple[str, int], str]:
    """``{(step, attempt): store status}`` a run of ``job`` must leave in the store."""
    expected: dict[tuple[str, int], str] = {}
    for step, design in JOBS[job].items():
        for attempt in range(1, design.attempts + 1):
            last = attempt == design.attempts
            expected[(step, attempt)] = "failed" if (not last or design.fails) else "success"
    return expected


def expected_metrics(job: str) -> dict[tuple[str, int, str], float]:
    """``{(step, attempt, metric): value}`` a run of ``job`` must leave in the store."""
    return {
        (step, design.attempts, name): value
        for step, design in JOBS[job].items()
        for name, value in design.metrics.items()
    }
