"""Metric points handed to the orchestrator's own storage, for reconciliation to record.

A run must never fail or wait because the store is down, yet its metrics must not be lost. So
every point a component records also travels with the orchestrator's own durable record of the
step — on Dagster, the step's output (or failure) event metadata under :data:`DAGSTER_KEY`; on
Airflow, the task try's XCom under :data:`XCOM_KEY` — and reconciliation reads them back and
records them. The store's metric key (run, component, attempt, name, step) makes that
idempotent: points the op did record are skipped, the rest are written once.

The hand-off carries numbers, names and times only: never configuration, so never a secret::

    {"version": 1, "points": [["load", "rows", 1250.0, 0, 1, "2026-12-07T08:00:00+00:00"], ...]}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from etl_meta.errors import ValidationError

#: Dagster metadata key of the hand-off (a JSON metadata value on the step's event).
DAGSTER_KEY = "etl_meta/metrics"
#: Airflow XCom key of the hand-off (pushed by the task try itself).
XCOM_KEY = "etl_meta_metrics"
VERSION = 1


@dataclass(frozen=True)
class PendingPoint:
    """One metric point as a component recorded it (attempt 1-based, step 0-based)."""

    component: str
    name: str
    value: float
    step: int
    attempt: int
    recorded_at: datetime

    def as_tuple(self) -> tuple[str, str, float, int, int, datetime]:
        """The point in the shape ``store.metrics.record`` takes."""
        return (self.component, self.name, self.value, self.step, self.attempt, self.recorded_at)


def encode(points: Iterable[PendingPoint]) -> dict[str, Any]:
    """The JSON-able hand-off of ``points``."""
    return {
        "version": VERSION,
        "points": [
            [p.component, p.name, p.value, p.step, p.attempt, p.recorded_at.isoformat()]
            for p in points
        ],
    }


def decode(data: Any) -> list[PendingPoint]:
    """The points of a hand-off written by :func:`encode`; a malformed one is a ValidationError.

    The hand-off sits in another system's storage, so it is checked like any input: strict
    types, aware timestamps, nothing extra.
    """
    if not isinstance(data, dict) or set(data) != {"version", "points"}:
        raise ValidationError.single("(hand-off)", "must be an object with version and points")
    if data["version"] != VERSION:
        raise ValidationError.single("version", f"unsupported hand-off version (want {VERSION})")
    if not isinstance(data["points"], list):
        raise ValidationError.single("points", "must be a list")
    return [_point(index, item) for index, item in enumerate(data["points"])]


def _point(index: int, item: Any) -> PendingPoint:
    where = f"points.{index}"
    if not isinstance(item, list) or len(item) != 6:
        raise ValidationError.single(where, "must be a list of 6 items")
    component, name, value, step, attempt, recorded_at = item
    if not isinstance(component, str) or not isinstance(name, str):
        raise ValidationError.single(where, "component and name must be strings")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError.single(f"{where}.value", "must be a number")
    for field, number in (("step", step), ("attempt", attempt)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValidationError.single(f"{where}.{field}", "must be an integer")
    try:
        when = datetime.fromisoformat(recorded_at) if isinstance(recorded_at, str) else None
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise ValidationError.single(f"{where}.recorded_at", "must be an aware ISO timestamp")
    return PendingPoint(component, name, float(value), step, attempt, when)


def as_tuples(points: Sequence[PendingPoint]) -> list[tuple[str, str, float, int, int, datetime]]:
    """``points`` in the shape ``store.metrics.record`` takes."""
    return [point.as_tuple() for point in points]
