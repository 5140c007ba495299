"""The metrics hand-off under Airflow: a task try's points in XCom when the store missed some.

A task must not fail or wait because the store is down, and its metrics must not be lost with
its process. So when a try ends (succeeded or failed) with points its recorder could not write
(:attr:`~etl_meta.runtime.MetricRecorder.unrecorded`), the try pushes **all** its
points to XCom under :data:`etl_meta.outbox.XCOM_KEY`, in Airflow's own database. ``etl-meta
airflow reconcile`` lists those entries (one call for every run) and records the points the store
lacks; the store's metric key (run, component, attempt, name, step) makes that exactly-once.

A try whose points all reached the store pushes nothing: the listing then names exactly the tries
reconciliation has to read. The hand-off holds names, numbers and times only, never
configuration, so never a secret.

Airflow clears a task's XCom when its next try starts, so a try that hands points off also
leaves them in the run's hand-off directory (:mod:`etl_meta.airflow.handoff`, which every worker
of the DAG already shares). The next try of the task carries them: it records them if the store
answers (then deletes the files), and otherwise pushes them to its own XCom with its points, so
the last try's XCom holds every point the store still lacks.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from etl_meta import outbox
from etl_meta.airflow import handoff
from etl_meta.errors import EtlMetaError
from etl_meta.outbox import PendingPoint
from etl_meta.runtime import MetricRecorder

log = logging.getLogger(__name__)

#: XCom key of a failed try's error (and its task's earlier failed tries' errors), so that
#: reconciliation can record the error text when the listener could not.
ERROR_KEY = "etl_meta_errors"


def _spool_dir(ti: Any) -> Path:
    return handoff.run_dir(str(ti.dag_id), str(ti.run_id))


def _spool_stem(ti: Any, kind: str = "metrics") -> str:
    index = int(getattr(ti, "map_index", -1) or -1)
    mapped = f".{index}" if index >= 0 else ""
    return f".{handoff.safe_name(str(ti.task_id))}{mapped}.{kind}.try-"


def _earlier(ti: Any, kind: str) -> list[tuple[Path, Any]]:
    """The JSON this task's earlier tries left as ``kind`` (unreadable files logged, skipped)."""
    directory, stem = _spool_dir(ti), _spool_stem(ti, kind)
    found: list[tuple[Path, Any]] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob(f"{stem}*.json")):
        number = path.name[len(stem) : -len(".json")]
        if not number.isdigit() or int(number) >= int(ti.try_number):
            continue
        try:
            found.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            log.warning("etl-meta: ignoring unreadable hand-off %s: %s", path, exc)
    return found


def _leave(ti: Any, kind: str, value: Any) -> None:
    """Leave this try's ``kind`` where the task's next try finds it (atomically)."""
    directory = _spool_dir(ti)
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / f"{_spool_stem(ti, kind)}{int(ti.try_number)}.json", value)


def _earlier_points(ti: Any) -> list[tuple[Path, list[PendingPoint]]]:
    found = []
    for path, value in _earlier(ti, "metrics"):
        try:
            found.append((path, outbox.decode(value)))
        except EtlMetaError as exc:
            log.warning("etl-meta: ignoring unreadable metrics hand-off %s: %s", path, exc)
    return found


def hand_off(ti: Any, recorder: MetricRecorder) -> bool:
    """Push ``recorder``'s points to XCom if the store missed any; whether it pushed.

    Points of earlier tries that never reached the store (see the module docstring) are
    recorded now, or pushed along. Never raises: a failed push is logged (the try's outcome
    matters more than its metrics).
    """
    try:
        earlier = _earlier_points(ti)
        carried = [point for _path, points in earlier for point in points]
        if recorder.write_points(carried):  # the store answers: nothing left to carry
            for path, _points in earlier:
                path.unlink(missing_ok=True)
            carried = []
        if recorder.unrecorded:
            _leave(ti, "metrics", outbox.encode(recorder.points))
    except Exception:
        log.exception("etl-meta could not keep metric points of task %s for its next try", ti)
        carried = []
    if not recorder.unrecorded and not carried:
        return False
    try:
        ti.xcom_push(key=outbox.XCOM_KEY, value=outbox.encode([*carried, *recorder.points]))
    except Exception:
        log.exception(
            "etl-meta could not hand %d metric point(s) of task %s off to XCom",
            len(recorder.unrecorded) + len(carried),
            getattr(ti, "task_id", "?"),
        )
        return False
    log.warning(
        "etl-meta: %d metric point(s) of task %s (this try's and earlier ones') wait in XCom %r "
        "for `etl-meta airflow reconcile`",
        len(recorder.unrecorded) + len(carried),
        getattr(ti, "task_id", "?"),
        outbox.XCOM_KEY,
    )
    return True


def hand_off_error(ti: Any, error: BaseException) -> None:
    """Leave the error a failing try raises where reconciliation finds it: the try's XCom under
    :data:`ERROR_KEY`, with the errors of the task's earlier failed tries (carried through the
    run's hand-off directory, as metrics are). Never raises.

    The text is the one the listener records (:func:`etl_meta.airflow.recording.error_text`):
    the user's error as ``Class: message``, cleaned and cut to what the store keeps.
    """
    from etl_meta.airflow.recording import error_text

    try:
        text = error_text(error)
        stem = _spool_stem(ti, "error")
        errors = {
            path.name[len(stem) : -len(".json")]: earlier
            for path, earlier in _earlier(ti, "error")
            if isinstance(earlier, str)
        }
        if text:
            errors[str(int(ti.try_number))] = text
            _leave(ti, "error", text)
        if errors:
            ti.xcom_push(key=ERROR_KEY, value={"version": 1, "errors": errors})
    except Exception:
        log.exception("etl-meta could not hand the error of task %s off to XCom", ti)


def errors_of(value: Any) -> dict[int, str]:
    """``{try number: error}`` from an :data:`ERROR_KEY` value (malformed parts are skipped)."""
    if not isinstance(value, dict) or value.get("version") != 1:
        return {}
    errors = value.get("errors")
    if not isinstance(errors, dict):
        return {}
    return {
        int(number): text
        for number, text in errors.items()
        if isinstance(number, str) and number.isdigit() and isinstance(text, str) and text
    }


def _write_json(target: Path, value: Any) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=".spool.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(value, handle)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
