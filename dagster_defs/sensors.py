"""Sensors that keep the store in step with Dagster, and launch runs the store asks for.

* ``etl_meta_on_run_<status>`` (queued, started, success, failure, canceled): record the run at
  once.
* ``etl_meta_reconcile``: the safety net — walks every run with its own cursor (see
  :mod:`dagster_defs.reconcile`) and reports how far behind it is.
* ``etl_meta_run_requests``: turns pending ``run_request`` rows into exactly one run each.

All run by default (``DefaultSensorStatus.RUNNING``) once a daemon runs (``dagster dev``).

A tick never waits long on the store: Dagster kills a tick after 60 s and evaluates no other
sensor of the location meanwhile. Status sensors give each run :data:`STATUS_WRITE_SECONDS` and
stop trying for a while after a failure (a circuit breaker); the reconcile sensor stops after
:data:`RECONCILE_TICK_SECONDS` and resumes from its cursor. What a tick skips, the next
reconcile pass records.
"""

import json
import logging
from collections.abc import Sequence

import dagster as dg

from dagster_defs.reconcile import oldest_unrecorded_age, reconcile
from dagster_defs.recording import TAG_RUN_REQUEST, record_run
from dagster_defs.resources import EtlMetaResource
from etl_meta.breaker import CircuitBreaker
from etl_meta.errors import StoreUnavailableError, is_transient
from etl_meta.masking import mask_value
from etl_meta.models import RunRequestStatus

log = logging.getLogger(__name__)

#: How long a status sensor waits on the store for one run (then reconcile records it).
STATUS_WRITE_SECONDS = 5.0
#: How long one reconcile tick works before it saves its cursor and yields.
RECONCILE_TICK_SECONDS = 20.0
#: How long one run request tick may wait on the store.
REQUEST_TICK_SECONDS = 10.0
# One per code-server process: after a failure, status sensors skip the store for 10 s, then
# 20 s, then 30 s while it stays down; short, so runs ending after recovery are recorded at once.
_STATUS_BREAKER = CircuitBreaker(cooldown_seconds=10.0, max_cooldown_seconds=30.0)

STATUSES = {
    # Dagster's run queue (QueuedRunCoordinator) enqueues runs: the store shows them waiting.
    "queued": dg.DagsterRunStatus.QUEUED,
    "started": dg.DagsterRunStatus.STARTED,
    "success": dg.DagsterRunStatus.SUCCESS,
    "failure": dg.DagsterRunStatus.FAILURE,
    "canceled": dg.DagsterRunStatus.CANCELED,
}


def _status_sensor(label: str, status: dg.DagsterRunStatus) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=f"etl_meta_on_run_{label}",
        description=f"Records each etl-meta run in the store when it reaches {label}.",
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _record(context: dg.RunStatusSensorContext, etl_meta: EtlMetaResource) -> None:
        run_id = context.dagster_run.run_id
        if not _STATUS_BREAKER.allows():
            context.log.warning(
                f"run {run_id} not recorded now (the store failed moments ago; trying again in "
                f"{_STATUS_BREAKER.remaining():.0f}s): etl_meta_reconcile records it later"
            )
            return
        try:
            observed = record_run(
                etl_meta.open_store(STATUS_WRITE_SECONDS),
                context.instance,
                run_id,
                max_seconds=STATUS_WRITE_SECONDS,
            )
        except StoreUnavailableError as exc:
            if is_transient(exc):
                _STATUS_BREAKER.failed()
            # Raising would not help: the sensor's cursor moves past the run either way.
            context.log.warning(
                f"run {run_id} not recorded now ({exc.cause}): etl_meta_reconcile records it later"
            )
            return
        _STATUS_BREAKER.succeeded()
        if observed is not None:
            context.log.info(
                f"recorded run {context.dagster_run.run_id} as {observed.status} "
                f"with {len(observed.steps)} step attempt(s)"
            )

    return _record


def status_sensors() -> list[dg.SensorDefinition]:
    """One run-status sensor per status (Dagster takes one status per sensor)."""
    return [_status_sensor(label, status) for label, status in STATUSES.items()]


@dg.sensor(
    name="etl_meta_reconcile",
    description="Fills every run the status sensors missed; its cursor says how far behind it is.",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def reconcile_sensor(
    context: dg.SensorEvaluationContext, etl_meta: EtlMetaResource
) -> dg.SensorResult:
    state = json.loads(context.cursor) if context.cursor else {}
    try:
        store = etl_meta.open_store(RECONCILE_TICK_SECONDS / 4)
    except StoreUnavailableError as exc:
        lag = round(oldest_unrecorded_age(context.instance, state.get("updated_after")), 1)
        cursor = {**state, "lag_seconds": lag, "interrupted": f"store unavailable ({exc.cause})"}
        message = f"store unavailable ({exc.cause}); lag {lag:.0f}s, resuming from the cursor"
        context.log.warning(message)
        return dg.SensorResult(cursor=json.dumps(cursor), skip_reason=dg.SkipReason(message))
    result = reconcile(
        store,
        context.instance,
        cursor=state.get("updated_after"),
        budget_seconds=RECONCILE_TICK_SECONDS,
        write_seconds=STATUS_WRITE_SECONDS,
    )
    cursor = {
        "updated_after": result.cursor,
        "remaining": result.remaining,
        "lag_seconds": round(result.lag_seconds, 1),
        "max_delay_seconds": round(
            max(result.max_delay_seconds, float(state.get("max_delay_seconds") or 0.0)), 1
        ),
        "interrupted": result.interrupted,
        "failed": result.failed[-20:],
    }
    message = (
        f"recorded {result.recorded} run(s), {result.remaining} still to go, "
        f"lag {result.lag_seconds:.0f}s, longest delay {cursor['max_delay_seconds']:.0f}s"
        + (f", stopped early: {result.interrupted}" if result.interrupted else "")
    )
    context.log.info(message)
    return dg.SensorResult(cursor=json.dumps(cursor), skip_reason=dg.SkipReason(message))


def run_request_sensor(jobs: Sequence[dg.JobDefinition]) -> dg.SensorDefinition:
    """The sensor that launches pending run requests for the loaded ``jobs``."""
    loaded = {job.name for job in jobs}

    @dg.sensor(
        name="etl_meta_run_requests",
        description="Launches one run per pending etl-meta run request (run_key = request id).",
        jobs=list(jobs),
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _launch(context: dg.SensorEvaluationContext, etl_meta: EtlMetaResource) -> dg.SensorResult:
        try:
            store = etl_meta.open_store(REQUEST_TICK_SECONDS)
        except StoreUnavailableError as exc:
            message = f"store unavailable ({exc.cause}); pending requests wait for the next tick"
            return dg.SensorResult(skip_reason=dg.SkipReason(message))
        requests = []
        for pending in store.run_requests.list(
            status=RunRequestStatus.PENDING, orchestrator="dagster"
        ):
            if pending.job_name not in loaded:
                context.log.warning(
                    f"run request {pending.id}: job {pending.job_name} is not loaded here "
                    "(unknown to this code location, or it failed to build); left pending"
                )
                continue
            # The request's own status is the primary guard against launching twice: a run
            # already tagged with it (launched, maybe not yet recorded) is linked, not relaunched.
            existing = context.instance.get_run_records(
                filters=dg.RunsFilter(tags={TAG_RUN_REQUEST: str(pending.id)}), limit=1
            )
            if existing:
                record_run(store, context.instance, existing[0].dagster_run.run_id)
                continue
            overrides = store.run_requests.run_config(pending.id)
            requests.append(
                dg.RunRequest(
                    run_key=f"etl_meta_run_request_{pending.id}",
                    job_name=pending.job_name,
                    # Only masked values reach Dagster's run config (and its UI); a masked value
                    # tells the op to use the stored secret.
                    run_config={
                        "ops": {
                            component: {"config": mask_value(values)}
                            for component, values in overrides.items()
                        }
                    }
                    if overrides
                    else {},
                    tags={
                        TAG_RUN_REQUEST: str(pending.id),
                        "etl_meta/requested_by": pending.requested_by,
                    },
                )
            )
        return dg.SensorResult(run_requests=requests)

    return _launch
