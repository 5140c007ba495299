"""What Airflow's REST API says about a run, as the store's rows — and whether the store differs.

Pure functions over the API's JSON (plain dicts) and the store's public models, used by
:mod:`etl_meta.airflow.reconcile`. Times are Airflow's own: a try starts and ends when Airflow
says, not when its task process noticed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from etl_meta.airflow import recording
from etl_meta.airflow.rest import AirflowClient, run_id_of
from etl_meta.models import ExecutionStatus, StepStatus

#: Airflow's DAG-run states as the store's run statuses.
RUN_STATES = {
    "queued": ExecutionStatus.QUEUED,
    "running": ExecutionStatus.RUNNING,
    "success": ExecutionStatus.SUCCESS,
    "failed": ExecutionStatus.FAILED,
}
_TRY_TERMINAL = {
    "success": StepStatus.SUCCESS,
    "failed": StepStatus.FAILED,
    "up_for_retry": StepStatus.FAILED,  # a history row of a try that was retried
    "skipped": StepStatus.SKIPPED,
}
_TRY_RUNNING = {"running", "deferred", "up_for_reschedule", "restarting"}
#: The error of a failed try whose task process could not record its own.
UNRECORDED_ERROR = "failed in Airflow; the error was not recorded (see the try's log in Airflow)"


def when(value: Any) -> datetime | None:
    """An aware datetime from the API's ISO text (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return recording.when(parsed)


def step_key(step: dict[str, Any]) -> tuple[str, int]:
    """An attempt row's key: ``(component, attempt)``."""
    return step["component"], step["attempt"]


def execution_row(run: dict[str, Any], status: ExecutionStatus, *, include_conf: bool) -> dict:
    """The execution upsert for a DAG run (``conf`` only for a run the store has not seen)."""
    execution: dict[str, Any] = {
        "job": str(run["dag_id"]),
        "orchestrator": recording.ORCHESTRATOR,
        "external_run_id": run_id_of(run),
        "status": status,
        "started_at": when(run.get("start_date")),
        "ended_at": when(run.get("end_date")) if status.is_terminal else None,
    }
    if include_conf and run.get("conf"):
        execution["run_config"] = dict(run["conf"])
    execution["tags"] = recording.dag_run_tags(
        run.get("conf"), run.get("note"), run.get("run_type")
    )
    if execution["started_at"] and execution["ended_at"]:
        execution["ended_at"] = max(execution["ended_at"], execution["started_at"])
    return {key: value for key, value in execution.items() if value is not None}


def attempts_of(
    client: AirflowClient, dag_id: str, run_id: str, ti: dict[str, Any], run: ExecutionStatus
) -> list[dict[str, Any]]:
    """One attempt per try of ``ti``, with Airflow's own start and end times."""
    if int(ti.get("try_number") or 0) < 1:
        return []  # never ran (upstream_failed, still scheduled)
    tries = [ti]
    if int(ti["try_number"]) > 1:
        tries = client.tries(dag_id, run_id, str(ti["task_id"]), int(ti.get("map_index", -1)))
    return [a for a in (attempt_row(t, run) for t in tries) if a is not None]


def attempt_row(item: dict[str, Any], run: ExecutionStatus) -> dict[str, Any] | None:
    """The attempt upsert for one try (task instance or history row), or ``None`` if it never
    started; a try still going when its run ended is ``canceled``, as the listener records it."""
    number = int(item.get("try_number") or 0)
    state = str(item.get("state") or "")
    status = _TRY_TERMINAL.get(state)
    started, ended = when(item.get("start_date")), when(item.get("end_date"))
    if status is None:
        if state in _TRY_RUNNING and started is not None:
            status = StepStatus.CANCELED if run.is_terminal else StepStatus.RUNNING
        elif run.is_terminal and started is not None and state not in {"removed"}:
            status = StepStatus.CANCELED  # still going when the run ended (as the listener)
        else:
            return None
    if number < 1:
        return None
    ended = (ended or started) if status.is_terminal else None
    if started is not None and ended is not None and ended < started:
        ended = started
    attempt = {
        "component": str(item["task_id"]),
        "attempt": number,
        "status": status,
        "started_at": started,
        "ended_at": ended,
    }
    return {key: value for key, value in attempt.items() if value is not None}


def _differs(stored: Any, wanted: Any) -> bool:
    if wanted is None:
        return False
    if isinstance(wanted, datetime) and isinstance(stored, datetime):
        return recording.when(stored) != recording.when(wanted)
    return stored != wanted


def _changes(stored_status: Any, wanted_status: Any, stored: Any, wanted: dict) -> bool:
    """Whether the store's forward-only merge of ``wanted`` into ``stored`` would change it."""
    if wanted_status.rank > stored_status.rank:
        return True
    stale = wanted_status != stored_status  # behind, or another terminal: may only fill gaps
    for name, value in wanted.items():
        if name in {"status", "component", "attempt", "job", "orchestrator", "external_run_id"}:
            continue
        current = getattr(stored, name, None)
        if stale and current is not None:
            continue
        if _differs(current, value):
            return True
    return False


def run_changes(known: Any, execution: dict[str, Any]) -> bool:
    """Whether upserting ``execution`` would change the stored run ``known``."""
    return _changes(known.status, execution["status"], known, execution)


def step_changes(stored: Any, step: dict[str, Any]) -> bool:
    """Whether upserting ``step`` would add or change the stored attempt (``None``: new)."""
    return stored is None or _changes(stored.status, step["status"], stored, step)
