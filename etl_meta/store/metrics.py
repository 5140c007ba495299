"""``store.metrics``: record and read metric points, in bulk and idempotently.

Recording points is not audited: the audit trail is for definitions and run records, which
people change and need to account for. Points are append-only facts keyed by their run,
component, attempt, name and step; a replay changes nothing, and their run's own audit row says
who ran it. An audit row per batch would double an op's write for nothing a reader could use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy.orm import Session

from etl_meta.access import Role, requires
from etl_meta.errors import FieldProblem, NotFoundError, ValidationError, raise_translated
from etl_meta.models import Execution, ExecutionStatus, MetricPoint, MetricPublic, Orchestrator
from etl_meta.models.metric import METRIC_NAME_MAX
from etl_meta.repository import components as components_repo
from etl_meta.repository import executions as executions_repo
from etl_meta.repository import jobs as jobs_repo
from etl_meta.repository import metrics as repo
from etl_meta.store._base import StoreAPI
from etl_meta.types import coerce_enum, utcnow
from etl_meta.validation import check_metric_value, did_you_mean, key_label

#: A point as a tuple: ``(component, name, value[, step[, attempt[, recorded_at]]])``.
PointTuple = tuple[Any, ...]
#: The keys a point given as a mapping may have: those of :class:`MetricPoint`.
_POINT_KEYS = tuple(MetricPoint.model_fields)
_MAX_PROBLEMS = 20


@dataclass(frozen=True)
class RecordResult:
    """How many points were new and how many were already recorded (replays)."""

    inserted: int
    skipped: int


@dataclass(frozen=True)
class MetricTarget:
    """Where one run's component records points: the store's ids, looked up once.

    Also the run as the store held it then, so a writer can tell whether it has anything to add
    to the run's record (see :meth:`MetricsAPI.target`).
    """

    execution_id: int
    component: str
    component_id: int
    status: ExecutionStatus
    log_path: str | None
    job_revision: int | None
    config_versions: dict[str, Any] | None


class MetricsAPI(StoreAPI):
    """Metric points keyed by (run, component, attempt, name, step); a point is written once."""

    namespace = "metrics"

    @requires(Role.WRITER)
    def record(
        self,
        points: Iterable[MetricPoint | Mapping[str, Any] | PointTuple],
        *,
        execution_id: int | None = None,
        orchestrator: Orchestrator | str | None = None,
        run_id: str | None = None,
    ) -> RecordResult:
        """Record points for one execution, given by ``execution_id`` or orchestrator + run id.

        All points are validated before any is written (finite values, known components, names,
        aware timestamps); one bad point rejects the batch with every problem listed. Points
        already recorded are skipped, so replaying a batch changes nothing.
        """
        if (execution_id is None) == (run_id is None):
            raise ValidationError.single(
                "execution_id", "give either execution_id or orchestrator and run_id"
            )
        with self._tx() as session:
            execution = self._execution(session, execution_id, orchestrator, run_id)
            components = components_repo.components_by_name(session, execution.job_id)
            ids = {name: c.id for name, c in components.items()}
            rows = _validate_points(points, execution.id, ids)
            inserted = repo.insert_points(session.connection(), rows)
            return RecordResult(inserted=inserted, skipped=len(rows) - inserted)

    @requires(Role.WRITER)
    def target(
        self, component: str, *, orchestrator: Orchestrator | str, run_id: str
    ) -> MetricTarget | None:
        """The ids ``component`` of run ``run_id`` records under, or ``None`` if the store does
        not know the run (or its job has no such component). One read, for :meth:`record_to`.
        """
        orch = coerce_enum(Orchestrator, orchestrator)
        with self._tx(readonly=True) as session:
            row = repo.find_target(session, orch, run_id, component)
        if row is None:
            return None
        execution_id, component_id, status, log_path, job_revision, config_versions = row
        return MetricTarget(
            execution_id=execution_id,
            component=component,
            component_id=component_id,
            status=coerce_enum(ExecutionStatus, status),
            log_path=log_path,
            job_revision=job_revision,
            config_versions=config_versions,
        )

    @requires(Role.WRITER)
    def record_to(
        self,
        target: MetricTarget,
        points: Iterable[MetricPoint | Mapping[str, Any] | PointTuple],
    ) -> RecordResult:
        """:meth:`record` for points of one component whose ids :meth:`target` resolved: the
        same checks and errors, then one transaction with no lookups (an op's hot path).

        Points of any other component are refused like unknown components.
        """
        rows = _validate_points(
            points, target.execution_id, {target.component: target.component_id}
        )
        if self._store.in_transaction():  # join the caller's transaction, as every call does
            with self._tx() as session:
                inserted = repo.insert_points(session.connection(), rows)
        else:
            try:
                inserted = repo.commit_points(self._store.engine, rows, self._store.held_connection)
            except sa_exc.SQLAlchemyError as exc:
                raise_translated(exc)
        return RecordResult(inserted=inserted, skipped=len(rows) - inserted)

    @requires(Role.READER)
    def list(
        self,
        *,
        execution_id: int,
        component: str | None = None,
        name: str | None = None,
        final_attempt_only: bool = False,
    ) -> list[MetricPublic]:
        """Points of one execution; ``final_attempt_only`` drops points of retried attempts."""
        with self._tx(readonly=True) as session:
            execution = self._execution(session, execution_id, None, None)
            component_id = None
            if component is not None:
                job_name = jobs_repo.job_names(session, [execution.job_id])[execution.job_id]
                component_id = components_repo.get_component(
                    session, execution.job_id, component, job_name=job_name
                ).id
            rows = repo.list_points(
                session,
                execution_id=execution_id,
                component_id=component_id,
                name=name,
                final_attempt_only=final_attempt_only,
            )
            return [
                MetricPublic.model_validate({**row._mapping, "execution_id": execution_id})
                for row in rows
            ]

    @staticmethod
    def _execution(
        session: Session,
        execution_id: int | None,
        orchestrator: Orchestrator | str | None,
        run_id: str | None,
    ) -> Execution:
        if execution_id is not None:
            row = session.get(Execution, execution_id)
            key: object = execution_id
        else:
            orch = coerce_enum(Orchestrator, orchestrator or Orchestrator.MANUAL)
            row = executions_repo.find_execution(session, orch, run_id or "")
            key = f"{orch}:{run_id}"
        if row is None:
            raise NotFoundError("execution", key)
        return row


def _validate_points(
    points: Iterable[MetricPoint | Mapping[str, Any] | PointTuple],
    execution_id: int,
    component_ids: Mapping[str, int],
) -> list[repo.PointRow]:
    """Check every point with plain Python (pydantic per point costs more than the insert).

    A 6-tuple of exact builtin types that passes every check takes an inline fast path; any other
    point, or any doubt, goes through :func:`_check_point`, which applies the same rules and names
    the problem. Both give the same row for the same point.
    """
    now: datetime | None = None  # one time for the batch's untimed points, taken if needed
    rows: list[repo.PointRow] = []
    append = rows.append
    problems: list[FieldProblem] = []
    component_id_of = component_ids.get
    isfinite = math.isfinite
    known_names: set[str] = set()  # exact ``str`` names that already passed the name checks
    for index, point in enumerate(points):
        if type(point) is tuple and len(point) == 6:
            component, name, value, step, attempt, recorded_at = point
            value_type = type(value)
            if (
                type(component) is str
                and (component_id := component_id_of(component)) is not None
                and type(name) is str
                and (
                    name in known_names or (0 < len(name) <= METRIC_NAME_MAX and name.isprintable())
                )
                and ((value_type is float and isfinite(value)) or value_type is int)
                and type(step) is int
                and 0 <= step < 2**63
                and type(attempt) is int
                and 1 <= attempt < 2**31
                and (
                    recorded_at is None
                    or (
                        type(recorded_at) is datetime
                        and (recorded_at.tzinfo is UTC or recorded_at.utcoffset() is not None)
                    )
                )
            ):
                if value_type is int:
                    value = float(value)  # may raise OverflowError, as _check_point's does
                if recorded_at is None:
                    recorded_at = now = now or utcnow()
                append((execution_id, component_id, attempt, name, step, value, recorded_at))
                continue
        now = now or utcnow()
        try:
            component_id, name, value, step, attempt, recorded_at = _check_point(
                point, component_ids, now
            )
        except _Bad as bad:
            problems.append(FieldProblem(f"points.{index}.{bad.field}", bad.message))
            if len(problems) >= _MAX_PROBLEMS:
                break
            continue
        if type(name) is str:
            known_names.add(name)
        append((execution_id, component_id, attempt, name, step, value, recorded_at))
    if problems:
        raise ValidationError(problems, entity="metric")
    return rows


def check_point(point: PointTuple) -> None:
    """Raise the :class:`ValidationError` :meth:`MetricsAPI.record` would raise for ``point``,
    without the store (the component is not checked: only the store knows the job's).

    For writers that may have to hold a point until the store is back: a point they hand off
    must be one the store will take.
    """
    try:
        _check_point(point, _ANY_COMPONENT, utcnow())
    except _Bad as bad:
        raise ValidationError.single(bad.field, bad.message, entity="metric") from None


class _AnyComponent(dict[str, int]):
    def get(self, key: Any, default: Any = None) -> int:
        return 0


_ANY_COMPONENT = _AnyComponent()


def _check_point(
    point: Any, component_ids: Mapping[str, int], now: datetime
) -> tuple[int, str, float, int, int, datetime]:
    """``(component_id, name, value, step, attempt, recorded_at)`` of a valid point, or _Bad."""
    component, name, value, step, attempt, recorded_at = _unpack(point)
    component_id = component_ids.get(component) if isinstance(component, str) else None
    if component_id is None:
        raise _Bad("component", "unknown component of this run's job")
    if not isinstance(name, str) or not 0 < len(name) <= METRIC_NAME_MAX:
        raise _Bad("name", f"must be a string of 1 to {METRIC_NAME_MAX} characters")
    if not name.isprintable():
        raise _Bad("name", "must not contain NUL bytes or control characters")
    try:
        # Any real number but a bool: numpy scalars and Decimal are floats once stored.
        value = check_metric_value(value)
    except ValueError as exc:
        raise _Bad("value", str(exc)) from None
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**63:
        raise _Bad("step", "must be a non-negative integer")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt < 2**31:
        raise _Bad("attempt", "must be a positive integer")
    if recorded_at is None:
        recorded_at = now
    elif not isinstance(recorded_at, datetime) or recorded_at.utcoffset() is None:
        raise _Bad("recorded_at", "must be a timezone-aware datetime")
    return component_id, name, value, step, attempt, recorded_at


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _unpack(point: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
    if isinstance(point, MetricPoint):
        return (
            point.component,
            point.name,
            point.value,
            point.step,
            point.attempt,
            point.recorded_at,
        )
    if isinstance(point, Mapping):
        # A misspelt key (``stpe``) would otherwise record the default step and say nothing.
        for key in point:
            if key not in _POINT_KEYS:
                raise _Bad(key_label(key), f"unknown key{did_you_mean(str(key), _POINT_KEYS)}")
        if "component" not in point or "name" not in point or "value" not in point:
            raise _Bad("(point)", "needs component, name and value")
        return (
            point["component"],
            point["name"],
            point["value"],
            point.get("step", 0),
            point.get("attempt", 1),
            point.get("recorded_at"),
        )
    if isinstance(point, Sequence) and not isinstance(point, str) and 3 <= len(point) <= 6:
        padded = (*point, *((0, 1, None)[len(point) - 3 :]))
        return padded[0], padded[1], padded[2], padded[3], padded[4], padded[5]
    raise _Bad("(point)", "must be a MetricPoint, a mapping or a tuple of 3 to 6 items")
