"""Metric points are held to the store's strict input too: unknown keys, integers that are not
``int`` and values that are not finite real numbers are refused with the point's index, and the
whole batch is left unwritten. Any real number type a component may hand over is a float."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pydantic
import pytest

from etl_meta.errors import ValidationError
from etl_meta.models import ExecutionPublic, MetricPoint

NOT_INTEGERS = [True, "3", 3.0]


def refusal(call: Callable[[], Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value


@pytest.fixture
def run(factory) -> ExecutionPublic:
    """A run of an ``extract -> load`` job, with no points yet."""
    return factory.execution(factory.job().name)


# -- unknown keys -------------------------------------------------------------------------------


def test_a_metric_point_with_an_unknown_key_rejects_the_batch(store, run):
    good = {"component": "extract", "name": "rows", "value": 1.0}
    bad = {"component": "extract", "name": "rows", "value": 2.0, "stpe": 1}
    error = refusal(lambda: store.metrics.record([good, bad], execution_id=run.id))
    assert error.field == "points.1.stpe"
    assert error.problems[0].message == "unknown key (did you mean 'step'?)"
    assert store.metrics.list(execution_id=run.id) == []


def test_a_metric_point_key_that_is_not_a_name_is_quoted_in_the_field(store, run):
    bad = {"component": "extract", "name": "rows", "value": 2.0, "\x1b[31m": 1}
    error = refusal(lambda: store.metrics.record([bad], execution_id=run.id))
    assert error.field == 'points.0."\\u001b[31m"'


# -- strict integers, finite real values ---------------------------------------------------


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
@pytest.mark.parametrize("field", ["step", "attempt"])
def test_a_metric_point_refuses_non_integer_steps_and_attempts(store, run, field, value):
    point = {"component": "extract", "name": "rows", "value": 1.0, field: value}
    error = refusal(lambda: store.metrics.record([point], execution_id=run.id))
    assert error.field == f"points.0.{field}"
    assert store.metrics.list(execution_id=run.id) == []


@pytest.mark.parametrize("value", [True, np.bool_(True), "3", None, float("nan"), float("inf")])
def test_a_metric_value_must_be_a_finite_number_and_not_a_bool(store, run, value):
    # A mapping goes through the checked path; a full tuple first tries the fast path.
    as_mapping = {"component": "extract", "name": "rows", "value": value}
    as_tuple = ("extract", "rows", value, 0, 1, None)
    for point in (as_mapping, as_tuple):
        error = refusal(lambda p=point: store.metrics.record([p], execution_id=run.id))
        assert error.field == "points.0.value"
    assert store.metrics.list(execution_id=run.id) == []


def test_metric_values_of_any_real_number_type_are_stored_as_floats(store, run):
    values = [
        np.int64(7),
        np.int32(-3),
        np.float32(0.5),
        np.float64(2.25),
        Decimal("1.5"),
        4,
        MetricPoint(component="extract", name="m6", value=Decimal("6.5")).value,
    ]
    points = [("extract", f"m{i}", value) for i, value in enumerate(values)]
    store.metrics.record(points, execution_id=run.id)
    stored = {p.name: p.value for p in store.metrics.list(execution_id=run.id)}
    assert stored == {"m0": 7.0, "m1": -3.0, "m2": 0.5, "m3": 2.25, "m4": 1.5, "m5": 4.0, "m6": 6.5}
    assert all(type(value) is float for value in stored.values())


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), 10**400])
def test_metric_values_beyond_the_floats_are_refused(store, run, value):
    error = refusal(lambda: store.metrics.record([("extract", "m", value)], execution_id=run.id))
    assert error.problems[0].message == "must be a finite number (not NaN or infinity)"


def test_a_metric_point_model_takes_ints_and_numpy_numbers_as_floats():
    assert MetricPoint(component="c", name="m", value=3).value == 3.0
    assert MetricPoint(component="c", name="m", value=np.float32(0.5)).value == 0.5
    assert type(MetricPoint(component="c", name="m", value=np.int64(2)).value) is float
    with pytest.raises(pydantic.ValidationError):
        MetricPoint(component="c", name="m", value=True)
    with pytest.raises(pydantic.ValidationError):
        MetricPoint(component="c", name="m", value=1, stpe=2)
