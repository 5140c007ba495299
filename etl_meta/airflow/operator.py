"""``EtlMetaComponentOperator``: one Airflow task runs one stored component, via ``run_component``.

The operator carries its component's snapshot (masked configuration, the configuration version)
from the exported catalog. When it runs it:

1. loads each upstream component's output from the path that task pushed to XCom
   (:mod:`etl_meta.airflow.handoff`);
2. calls :func:`etl_meta.runtime.run_component` — the code path Dagster ops use — which
   reads the real configuration of that exact version from the store, merges the DAG run's
   overrides (``conf={"components": {"<component>": {...}}}``; ``***`` means "the stored value";
   an override that would change a secret is refused before anything runs), runs the component
   type and records its metrics keyed by run, component and try (metrics the store could not
   take within ``ETL_META_RECORD_WAIT_SECONDS`` go to XCom, see :mod:`etl_meta.airflow.xcom`);
3. writes the output to a run-scoped file and returns its path (the task's XCom).

Failures a retry cannot fix (invalid configuration, an override of a secret, a sandbox refusal, a
secret that cannot be decrypted, a missing file, failed data checks, wrong wiring; see
:func:`etl_meta.components.failures.is_final`) raise ``AirflowFailException`` so Airflow does not
retry them; any other error uses the task's retries.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from etl_meta.airflow import handoff, xcom
from etl_meta.airflow.stores import airflow_actor, open_store
from etl_meta.catalog import ComponentSnapshot, DataclassSnapshot, JobSnapshot
from etl_meta.components.failures import describe_failure, is_final
from etl_meta.errors import ValidationError
from etl_meta.runtime import (
    MetricRecorder,
    RunIdentity,
    run_component,
    run_log_path,
)

#: Key of the DAG run ``conf`` holding per-component configuration overrides.
CONF_COMPONENTS = "components"


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_overrides(conf: Mapping[str, Any] | None, component: str) -> dict[str, Any]:
    """The overrides a DAG run's ``conf`` gives ``component`` (``{}`` when none or malformed)."""
    components = (conf or {}).get(CONF_COMPONENTS)
    override = components.get(component) if isinstance(components, Mapping) else None
    return dict(override) if isinstance(override, Mapping) else {}


class FinalValidationError(ValidationError, AirflowFailException):
    """A :class:`~etl_meta.errors.ValidationError` Airflow does not retry: code that catches
    ``ValidationError`` (bad metric values, an override of a secret) still can."""


@functools.cache
def _final_class(cls: type[ValidationError]) -> type[ValidationError]:
    # Named as the original (SandboxError, SecretKeyMissingError…) so the recorded error and
    # Airflow's log say what went wrong; an instance of both, so either kind of handler works.
    bases = (FinalValidationError,) if cls is ValidationError else (cls, FinalValidationError)
    return type(cls.__name__, bases, {"__module__": cls.__module__})


def raise_final(exc: BaseException) -> None:
    """Raise ``AirflowFailException`` from ``exc`` when another try would fail the same way.

    A ``ValidationError`` stays an instance of its own class too (and of
    :class:`FinalValidationError`). Returns (the caller re-raises ``exc``) for failures the
    task's retries may fix.
    """
    if not is_final(exc) or isinstance(exc, AirflowFailException):
        return
    if isinstance(exc, ValidationError):
        # mypy checks a class against Hashable through its instances' __hash__: a false positive.
        final_class = _final_class(type(exc))  # type: ignore[arg-type]
        final = final_class.__new__(final_class, *exc.args)
        final.__dict__.update(exc.__dict__)
        raise final from exc
    raise AirflowFailException(describe_failure(exc)) from exc


def _doc(component: ComponentSnapshot) -> str:
    configuration = json.dumps(component.configuration, indent=2, sort_keys=True, default=str)
    lines = [
        f"**etl-meta component** `{component.name}` of type `{component.component_type}`, "
        f"configuration version {component.config_version} (secrets shown as `***`).",
    ]
    if component.description:
        lines += ["", component.description]
    lines += ["", "```json", configuration, "```"]
    return "\n".join(lines)


class EtlMetaComponentOperator(BaseOperator):
    """Runs one component of a stored job (see the module docstring)."""

    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        job: JobSnapshot,
        component: ComponentSnapshot,
        upstream_components: tuple[str, ...] = (),
        dataclasses: Mapping[str, DataclassSnapshot] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", component.name)
        kwargs.setdefault("doc_md", _doc(component))
        super().__init__(**kwargs)
        self.job = job
        self.component = component
        self.upstream_components = tuple(upstream_components)
        self.dataclasses = dict(dataclasses or {})

    @property
    def configuration(self) -> dict[str, Any]:
        """The component's configuration as exported: masked."""
        return dict(self.component.configuration)

    def _inputs(self, ti: Any) -> dict[str, Any]:
        return {
            name: handoff.read_output(ti.xcom_pull(task_ids=name, key="return_value"))
            for name in self.upstream_components
        }

    def execute(self, context: Any) -> str | None:
        """Run the component once (this try) and return the path of its output.

        A failing try leaves its error in XCom (:func:`etl_meta.airflow.xcom.hand_off_error`)
        before it propagates, for reconciliation to record if the listener cannot.
        """
        try:
            return self._execute(context)
        except Exception as exc:
            xcom.hand_off_error(context["ti"], exc)
            raise

    def _execute(self, context: Any) -> str | None:
        ti = context["ti"]
        run_id: str = context["run_id"]
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        actor = airflow_actor(ti.dag_id, run_id, ti.task_id, int(ti.try_number))
        store = open_store("task", actor=actor)
        component_log = logging.getLogger(f"etl_meta.component.{self.component.name}")
        handler: logging.Handler | None = None
        log_path = None
        if self.job.file_logging:
            path = run_log_path(store.settings.home, self.job.name, handoff.safe_name(run_id))
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            component_log.addHandler(handler)
            log_path = str(path)
        run = RunIdentity(
            "airflow",
            run_id,
            attempt=int(ti.try_number),
            job_revision=self.job.revision,
            config_versions=self.job.config_versions,
            log_path=log_path,
        )
        recorder = MetricRecorder(store, self.job, self.component.name, run)
        try:
            result = run_component(
                store,
                job=self.job,
                component=self.component,
                run=run,
                inputs=self._inputs(ti),
                dataclasses=self.dataclasses,
                overrides=_deep_merge(
                    self.component.configuration, run_overrides(conf, self.component.name)
                ),
                log=component_log,
                recorder=recorder,
            )
        except Exception as exc:
            raise_final(exc)
            raise
        finally:
            # Succeeded or failed: what the store missed survives the try in XCom.
            xcom.hand_off(ti, recorder)
            if handler is not None:
                component_log.removeHandler(handler)
                handler.close()
        if result.metrics:
            self.log.info("etl-meta metrics of %s: %s", self.component.name, result.metrics)
        return handoff.write_output(
            result.value, dag_id=ti.dag_id, run_id=run_id, component=self.component.name
        )
