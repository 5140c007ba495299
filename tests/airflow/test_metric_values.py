"""Metric values as Airflow tasks hand them to ``etl_meta.airflow.task.log_metrics``: numpy scalars
and Decimal are stored as floats; a bool, NaN or an infinity is refused, naming the point, and
nothing of that call is stored."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.support import dags_folder, run_dag
from tests.plugins import STEP

#: Filled by the task, which runs in this process under ``dag.test()``.
REFUSED: dict[str, tuple[str, str]] = {}

METRICS_DAG = """
from decimal import Decimal

import numpy as np
from airflow.sdk import dag, task

from etl_meta.airflow.task import log_metrics
from etl_meta.errors import ValidationError
from tests.airflow import test_metric_values as spec


@dag(dag_id="metric_values", schedule=None, tags=["etl-meta"])
def metric_values():
    @task(task_id="measure")
    def measure(**context):
        log_metrics(
            context,
            {
                "i64": np.int64(7),
                "i32": np.int32(-3),
                "f32": np.float32(0.5),
                "f64": np.float64(2.25),
                "dec": Decimal("1.25"),
            },
        )
        bad = {
            "bool": True,
            "np_bool": np.bool_(True),
            "nan": float("nan"),
            "np_inf": np.float32("inf"),
            "dec_nan": Decimal("NaN"),
        }
        for name, value in bad.items():
            try:
                log_metrics(None, {"ok": 1.0, name: value})
            except ValidationError as exc:
                spec.REFUSED[name] = (exc.field, exc.problems[0].message)

    measure()


metric_values_dag = metric_values()
"""


@pytest.fixture
def metrics_dag(airflow_env) -> Iterator[Path]:
    path = dags_folder() / "metric_values_dag.py"
    path.write_text(METRICS_DAG)
    yield path
    path.unlink()


def test_numpy_and_decimal_values_are_stored_as_floats_and_bad_ones_refused(store, metrics_dag):
    store.jobs.create(
        {"name": "metric_values", "components": [{"name": "measure", "component_type": STEP}]}
    )
    REFUSED.clear()
    dag_run = run_dag(runpy.run_path(str(metrics_dag))["metric_values_dag"])

    assert dag_run.state == "success"
    execution = store.executions.find("airflow", dag_run.run_id)
    stored = {p.name: p.value for p in store.metrics.list(execution_id=execution.id)}
    assert stored == {"i64": 7.0, "i32": -3.0, "f32": 0.5, "f64": 2.25, "dec": 1.25}
    assert all(type(value) is float for value in stored.values())
    # Each bad call is refused whole (its good "ok" point too), naming the bad point's value.
    assert REFUSED == {
        "bool": (
            "points.1.value",
            "must be a number (int, float, numpy number or Decimal; not a bool)",
        ),
        "np_bool": (
            "points.1.value",
            "must be a number (int, float, numpy number or Decimal; not a bool)",
        ),
        "nan": ("points.1.value", "must be a finite number (not NaN or infinity)"),
        "np_inf": ("points.1.value", "must be a finite number (not NaN or infinity)"),
        "dec_nan": ("points.1.value", "must be a finite number (not NaN or infinity)"),
    }
