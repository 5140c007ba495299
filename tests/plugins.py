"""A component type for tests about storage rather than about any one type's contract.

Its contract accepts any configuration keys (a plugin may declare an open contract), so tests of
dependencies, links, limits and history can store components without a real type's required
fields. Registered when the test suite starts (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pydantic

from etl_meta import MetadataStore
from etl_meta.components import (
    ComponentContext,
    ComponentResult,
    ComponentType,
    SandboxError,
    register,
)
from etl_meta.errors import ValidationError
from etl_meta.secrets import SecretDecryptError

#: The ``component_type`` of components whose type does not matter to a test.
STEP = "test.step"
#: The ``component_type`` of a step that raises the error its ``raises`` key names.
FAILING = "test.failing"

#: Errors by name: a retry fixes only ``transient``.
RAISES = {
    "missing_file": lambda: FileNotFoundError(2, "No such file or directory", "data/in.csv"),
    "undecryptable": lambda: SecretDecryptError("no configured key decrypts it", field="password"),
    "invalid": lambda: ValidationError.single("path", "must be relative"),
    "sandbox": lambda: SandboxError("path", "hidden files and directories are off limits"),
    "transient": lambda: ConnectionError("server closed the connection"),
}


@register
class Step(ComponentType):
    """Does nothing; accepts any configuration."""

    name = STEP
    description = "A step that does nothing (tests)."

    class Config(ComponentType.Config):
        model_config = pydantic.ConfigDict(extra="allow")

    def run(
        self, context: ComponentContext, config: Any, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        return ComponentResult()


@register
class Failing(ComponentType):
    """Raises the error its configuration names, on every attempt."""

    name = FAILING

    class Config(ComponentType.Config):
        raises: str = "transient"

    def run(
        self, context: ComponentContext, config: Any, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        raise RAISES[config.raises]()


@contextmanager
def declaring_worker_types(store: MetadataStore, *types: str) -> Iterator[MetadataStore]:
    """``store`` as an operator sees it who declared ``types`` installed only on workers, so
    components of types this process lacks can be stored (to test what orchestrators do then)."""
    settings = store.settings.model_copy(update={"worker_component_types": list(types)})
    with MetadataStore(engine=store.engine, settings=settings) as declaring:
        yield declaring


def failing_job(store: MetadataStore, raises: str) -> None:
    """Job ``failing``: one step of type :data:`FAILING` raising ``raises``, 2 retries allowed."""
    store.jobs.create(
        {
            "name": "failing",
            "num_of_retries": 2,
            "components": [
                {"name": "step", "component_type": FAILING, "configuration": {"raises": raises}}
            ],
        }
    )
