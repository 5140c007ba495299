"""Running component types in-process, the way an orchestrator integration does."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_meta.components import (
    ComponentContext,
    ComponentResult,
    DataclassInfo,
    get_component_type,
)
from etl_meta.components.sandbox import Sandbox
from etl_meta.definitions import DefinitionsFile, JobSpec
from tests.backends import isolated_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_copy(tmp_path: Path) -> Path:
    """A copy of ``examples/`` (data, functions.py, pipeline.yaml) to run the pipeline in."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("output", "__pycache__"))
    return target


def sandbox_for(base_dir: Path, **settings: Any) -> Sandbox:
    """A sandbox over ``base_dir`` with ``settings`` (``sandbox_roots=[...]``, ...) of the
    operator's, ignoring the developer's own environment."""
    return Sandbox.from_settings(
        isolated_settings(base_dir / ".etl-meta-home", **settings), base_dir=base_dir
    )


def context_for(
    name: str,
    component_type: str,
    config: Mapping[str, Any] | None = None,
    *,
    base_dir: Path,
    attempt: int = 1,
    reads: tuple[str, ...] = (),
    writes: tuple[str, ...] = (),
    dataclasses: Mapping[str, DataclassInfo] | None = None,
    job: str = "test_job",
    record_metrics: Callable[[Mapping[str, float]], None] | None = None,
    sandbox: Sandbox | None = None,
) -> ComponentContext:
    """A context for one component outside any orchestrator."""
    return ComponentContext(
        job=job,
        component=name,
        component_type=component_type,
        config=dict(config or {}),
        attempt=attempt,
        run_id="test-run",
        orchestrator="test",
        base_dir=base_dir,
        reads=reads,
        writes=writes,
        dataclasses=dict(dataclasses or {}),
        log=logging.getLogger(f"etl_meta.component.{name}"),
        record_metrics=record_metrics,
        sandbox=sandbox,
    )


def run_component(
    component_type: str,
    config: Mapping[str, Any],
    upstream: Mapping[str, Any] | None = None,
    *,
    base_dir: Path,
    name: str = "step",
    **context_fields: Any,
) -> ComponentResult:
    """Parse ``config`` and run one component of ``component_type``.

    ``upstream`` maps upstream component names to their values (``run``'s ``inputs``);
    ``context_fields`` go to :func:`context_for` (``reads``/``writes`` are dataclass names).
    """
    implementation = get_component_type(component_type)
    parsed = implementation.parse_config(config)
    context = context_for(name, component_type, config, base_dir=base_dir, **context_fields)
    return implementation.run(context, parsed, dict(upstream or {}))


def dataclass_infos(definitions: DefinitionsFile) -> dict[str, DataclassInfo]:
    """The dataclasses of a definitions file as components see them."""
    return {
        d.name: DataclassInfo(
            name=d.name,
            dataclass_type=d.dataclass_type,
            schema_definition=d.schema_definition,
            validation_rules=d.validation_rules,
            version=1,
        )
        for d in definitions.dataclasses
    }


@dataclass
class JobRun:
    """What running a job in-process produced: results and attempt counts per component."""

    results: dict[str, ComponentResult] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[BaseException]] = field(default_factory=dict)


def run_order(job: JobSpec) -> list[str]:
    """The job's components in dependency order (declaration order among ready ones)."""
    pending = {c.name: set(c.depends_on) for c in job.components}
    order: list[str] = []
    while pending:
        ready = [name for name, upstream in pending.items() if upstream <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order.append(ready[0])
        del pending[ready[0]]
    return order


def run_job(definitions: DefinitionsFile, job_name: str, base_dir: Path) -> JobRun:
    """Run every component of ``job_name`` in order, retrying up to the job's num_of_retries."""
    job = next(j for j in definitions.jobs if j.name == job_name)
    components = {c.name: c for c in job.components}
    infos = dataclass_infos(definitions)
    run = JobRun()
    for name in run_order(job):
        spec = components[name]
        implementation = get_component_type(spec.component_type)
        config = implementation.parse_config(spec.configuration)
        inputs = {upstream: run.results[upstream].value for upstream in spec.depends_on}
        for attempt in range(1, job.num_of_retries + 2):
            context = context_for(
                name,
                spec.component_type,
                spec.configuration,
                base_dir=base_dir,
                attempt=attempt,
                reads=tuple(spec.inputs),
                writes=tuple(spec.outputs),
                dataclasses={d: infos[d] for d in (*spec.inputs, *spec.outputs)},
                job=job.name,
            )
            run.attempts[name] = attempt
            try:
                run.results[name] = implementation.run(context, config, inputs)
                break
            except Exception as exc:
                run.errors.setdefault(name, []).append(exc)
                if attempt > job.num_of_retries:
                    raise
    return run
