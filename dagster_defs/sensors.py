"""Sensors that keep the store in step with Dagster, and launch runs the store asks for.

* ``etl_meta_on_run_<status>`` (started, success, failure, canceled): record the run at once.
* ``etl_meta_reconcile``: the safety net — walks every run with its own cursor (see
  :mod:`dagster_defs.reconcile`) and reports how far behind it is.
* ``etl_meta_run_requests``: turns pending ``run_request`` rows into exactly one run each.

All run by default (``DefaultSensorStatus.RUNNING``) once a daemon runs (``dagster dev``).
"""

import json
import logging
from collections.abc import Sequence

import dagster as dg

from dagster_defs.reconcile import reconcile
from dagster_defs.recording import TAG_RUN_REQUEST, record_run
from dagster_defs.resources import EtlMetaResource
from etl_meta.masking import mask_value
from etl_meta.models import RunRequestStatus

log = logging.getLogger(__name__)

STATUSES = {
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
        observed = record_run(etl_meta.store, context.instance, context.dagster_run.run_id)
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
    result = reconcile(etl_meta.store, context.instance, cursor=state.get("updated_after"))
    cursor = {
        "updated_after": result.cursor,
        "remaining": result.remaining,
        "lag_seconds": result.lag_seconds,
        "failed": result.failed[-20:],
    }
    message = (
        f"recorded {result.recorded} run(s), {result.remaining} still to go, "
        f"lag {result.lag_seconds or 0:.0f}s"
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
        store = etl_meta.store
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
