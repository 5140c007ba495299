"""The metrics hand-off under Airflow: a task try's points in XCom when the store missed some.

A task must not fail or wait because the store is down, and its metrics must not be lost with
its process. So when a try ends (succeeded or failed) with points its recorder could not write
(:attr:`~etl_meta.components.runtime.MetricRecorder.unrecorded`), the try pushes **all** its
points to XCom under :data:`etl_meta.outbox.XCOM_KEY`, in Airflow's own database. ``etl-meta
airflow reconcile`` lists those entries (one call for every run) and records the points the store
lacks; the store's metric key (run, component, attempt, name, step) makes that exactly-once.

A try whose points all reached the store pushes nothing: the listing then names exactly the tries
reconciliation has to read. The hand-off holds names, numbers and times only, never
configuration, so never a secret.
"""

from __future__ import annotations

import logging
from typing import Any

from etl_meta import outbox
from etl_meta.components.runtime import MetricRecorder

log = logging.getLogger(__name__)


def hand_off(ti: Any, recorder: MetricRecorder) -> bool:
    """Push ``recorder``'s points to XCom if the store missed any; whether it pushed.

    Never raises: a failed push is logged (the try's outcome matters more than its metrics).
    """
    if not recorder.unrecorded:
        return False
    try:
        ti.xcom_push(key=outbox.XCOM_KEY, value=outbox.encode(recorder.points))
    except Exception:
        log.exception(
            "etl-meta could not hand %d metric point(s) of task %s off to XCom; they are lost",
            len(recorder.unrecorded),
            getattr(ti, "task_id", "?"),
        )
        return False
    log.warning(
        "etl-meta: %d of %d metric point(s) of task %s wait in XCom %r for "
        "`etl-meta airflow reconcile`",
        len(recorder.unrecorded),
        len(recorder.points),
        getattr(ti, "task_id", "?"),
        outbox.XCOM_KEY,
    )
    return True
