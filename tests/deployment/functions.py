"""What the deployment tests' pipeline runs (``functions.py:<name>`` in pipeline.yaml).

Every function records the metrics :data:`METRICS` says it does, so the tests know what the
store must hold. Loaded by etl-meta's ``python`` component type from the base directory.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from etl_meta.components import ComponentContext, ComponentFailed, ComponentResult

#: The text of the designed failure (the tests look for it in the store's error).
DESIGNED_FAILURE = "designed failure: this step always refuses"
#: The text of the flaky step's first attempt.
FLAKY_FAILURE = "designed flaky failure on the first attempt"


def extract(context: ComponentContext, rows: int, password: str = "") -> ComponentResult:
    """``rows`` rows; records ``rows`` (and ``secret_length`` when given a password)."""
    metrics: dict[str, float] = {"rows": rows}
    if password:
        metrics["secret_length"] = len(password)
    return ComponentResult(value=list(range(rows)), metrics=metrics)


def enrich(context: ComponentContext, inputs: dict[str, Any]) -> ComponentResult:
    """Counts its inputs' rows; records ``batches`` during the run and ``rows`` at the end."""
    context.record_metrics({"batches": float(len(inputs))})
    total = sum(len(value) for value in inputs.values() if value is not None)
    return ComponentResult(value=total, metrics={"rows": total})


def flaky(context: ComponentContext) -> ComponentResult:
    """Fails its first attempt (retryable), then records ``rows``."""
    if context.attempt == 1:
        raise ConnectionError(FLAKY_FAILURE)
    return ComponentResult(value=[1], metrics={"rows": 1})


def designed_failure(context: ComponentContext) -> None:
    """Always fails for good."""
    raise ComponentFailed(DESIGNED_FAILURE, retryable=False)


def sleep_a_while(context: ComponentContext, seconds: float) -> ComponentResult:
    """Write this process's pid to ``pids/<run id>.pid`` under the base directory, then sleep."""
    directory = context.path("pids")
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", context.run_id)
    (directory / f"{name}.pid").write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(seconds)
    return ComponentResult(value=None, metrics={"slept": seconds})
