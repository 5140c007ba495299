"""Metric values as ops hand them over: numpy scalars and Decimal are stored as floats; a bool,
NaN or an infinity is refused, naming the point, and nothing of it is stored."""

from decimal import Decimal

import dagster as dg
import numpy as np
import pytest

from dagster_defs.resources import EtlMetaResource
from etl_meta.errors import ValidationError
from tests.dagster.support import chain_job, dagster_env

CAPTURED: dict = {}

#: What ``df.amount.sum()``, a float32 column or a database driver hand over.
NUMBERS = {
    "i64": np.int64(7),
    "i32": np.int32(-3),
    "f32": np.float32(0.5),
    "f64": np.float64(2.25),
    "dec": Decimal("1.25"),
}
NOT_NUMBERS = {
    "bool": True,
    "np_bool": np.bool_(False),
    "nan": float("nan"),
    "np_inf": np.float64("inf"),
    "dec_nan": Decimal("NaN"),
    "dec_inf": Decimal("-Infinity"),
}


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


@dg.op
def b(context: dg.OpExecutionContext, etl_meta: EtlMetaResource) -> None:
    CAPTURED["result"] = etl_meta.log_metrics(context, NUMBERS)
    refused = {}
    for name, value in NOT_NUMBERS.items():
        try:
            etl_meta.log_metrics(context, {"ok": 1.0, name: value})
        except ValidationError as exc:
            refused[name] = (exc.field, exc.problems[0].message)
    CAPTURED["refused"] = refused


def _job() -> dg.JobDefinition:
    @dg.job(name="chain", resource_defs={"etl_meta": EtlMetaResource()})
    def chain():
        b()

    return chain


def test_numpy_and_decimal_values_are_stored_as_floats_and_bad_ones_refused(store, instance):
    chain_job(store)
    CAPTURED.clear()
    result = _job().execute_in_process(instance=instance)

    assert result.success
    assert CAPTURED["result"].inserted == len(NUMBERS)
    execution = store.executions.find("dagster", result.run_id)
    stored = {p.name: p.value for p in store.metrics.list(execution_id=execution.id)}
    assert stored == {"i64": 7.0, "i32": -3.0, "f32": 0.5, "f64": 2.25, "dec": 1.25}
    assert all(type(value) is float for value in stored.values())
    # Each bad call is refused whole (its good "ok" point too), naming the bad point's value.
    assert set(CAPTURED["refused"]) == set(NOT_NUMBERS)
    for name in ("bool", "np_bool"):
        assert CAPTURED["refused"][name] == (
            "points.1.value",
            "must be a number (int, float, numpy number or Decimal; not a bool)",
        )
    for name in ("nan", "np_inf", "dec_nan", "dec_inf"):
        assert CAPTURED["refused"][name] == (
            "points.1.value",
            "must be a finite number (not NaN or infinity)",
        )
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output.event_specific_data.metadata
    assert {name: metadata[name].value for name in NUMBERS} == stored
