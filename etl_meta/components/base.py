"""The contract every component type implements, whatever orchestrator runs it.

A component type is a class with a ``name``, a pydantic ``Config`` model for its configuration
(its contract, see :mod:`etl_meta.components.contracts`; secrets are fields typed
``SecretText``/``SecretURL``), and a ``run`` method. Dagster ops and Airflow tasks both build a
:class:`ComponentContext` and call ``run``; the type itself never imports an orchestrator::

    from etl_meta.components import ComponentContext, ComponentResult, ComponentType, register

    @register
    class Upper(ComponentType):
        name = "upper"

        class Config(ComponentType.Config):
            column: str

        def run(self, context, config, inputs):
            (frame,) = inputs.values()
            frame = frame.assign(**{config.column: frame[config.column].str.upper()})
            return ComponentResult(value=frame, metrics={"rows": len(frame)})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic

from etl_meta.components.contracts import SecretKind, problems_from, secret_fields
from etl_meta.errors import FieldProblem, ValidationError

if TYPE_CHECKING:
    from etl_meta.components.sandbox import Sandbox
    from etl_meta.config import Settings


@dataclass(frozen=True)
class DataclassInfo:
    """The parts of a stored dataclass a component needs (its schema and rules)."""

    name: str
    dataclass_type: str
    schema_definition: Mapping[str, Any]
    validation_rules: Mapping[str, Any]
    version: int


@dataclass
class ComponentContext:
    """What a running component knows about itself; built by the orchestrator integration.

    ``config`` holds the resolved configuration **with secrets** (only running code sees it);
    ``base_dir`` anchors relative paths in configuration; ``attempt`` is 1-based.
    """

    job: str
    component: str
    component_type: str
    config: Mapping[str, Any]
    attempt: int = 1
    run_id: str | None = None
    orchestrator: str = "manual"
    base_dir: Path = field(default_factory=Path.cwd)
    reads: tuple[str, ...] = ()  #: names of the dataclasses this component reads
    writes: tuple[str, ...] = ()  #: names of the dataclasses this component writes
    dataclasses: Mapping[str, DataclassInfo] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("etl_meta.component"))
    #: Records metrics as the component goes (the integration wires it to the store). Whatever
    #: it returns (the store's ``RecordResult``) is not the component's concern.
    record_metrics: Callable[[Mapping[str, float]], object] | None = None
    #: What the built-in types may read, write, import and connect to (``run_component`` passes
    #: the store's); unset means this process's settings with ``base_dir`` as the only root.
    sandbox: Sandbox | None = None

    def path(self, value: str | Path) -> Path:
        """``value`` as a path; relative paths are taken from ``base_dir``."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def dataclass(self, name: str) -> DataclassInfo:
        """A dataclass this component is linked to; raises ``KeyError`` naming it otherwise."""
        try:
            return self.dataclasses[name]
        except KeyError:
            raise KeyError(f"component {self.component!r} has no dataclass {name!r}") from None


@dataclass
class ComponentResult:
    """What a run produced: the value passed downstream, metrics, and display metadata.

    ``metrics`` are numbers recorded in the store (and shown by the orchestrator);
    ``metadata`` is for display only (a column schema, a path, a preview).
    """

    value: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class ComponentType:
    """Base class of component types. Subclasses set ``name`` and may override ``Config``."""

    #: The ``component_type`` value stored on components of this type.
    name: ClassVar[str]
    #: One-line description shown in listings and the orchestrators' UIs.
    description: ClassVar[str] = ""

    class Config(pydantic.BaseModel):
        """Configuration schema; unknown keys are errors."""

        model_config = pydantic.ConfigDict(extra="forbid", hide_input_in_errors=True)

    @classmethod
    def secret_fields(cls) -> dict[str, SecretKind]:
        """``{key: "value" | "url"}``: the configuration keys this type's contract marks secret."""
        return secret_fields(cls.Config)

    def parse_config(self, configuration: Mapping[str, Any]) -> pydantic.BaseModel:
        """Validate ``configuration``; raises :class:`ValidationError` naming each field."""
        try:
            return self.Config.model_validate(dict(configuration))
        except pydantic.ValidationError as exc:
            problems = problems_from(exc, self.Config, prefix="configuration.")
            raise ValidationError(problems, entity=f"{self.name} configuration") from None

    def check_definition(self, config: Any, settings: Settings) -> list[FieldProblem]:
        """Problems a parsed ``config`` has under ``settings`` (the operator's sandbox) that
        can be seen before running: apply, the store API and the runtime all ask. Field paths
        start with ``configuration.``. The default finds none."""
        return []

    def run(
        self, context: ComponentContext, config: Any, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        """Do the work. ``inputs`` maps each upstream component's name to its output value."""
        raise NotImplementedError(f"component type {self.name!r} does not implement run()")
