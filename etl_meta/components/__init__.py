"""Component types: the code that runs a component, shared by every orchestrator.

Importing this package loads neither pandas nor an orchestrator; built-in types import pandas
when they run.
"""

from etl_meta.components.base import (
    ComponentContext,
    ComponentResult,
    ComponentType,
    DataclassInfo,
)
from etl_meta.components.contracts import SecretText, SecretURL
from etl_meta.components.errors import ComponentFailed, ComponentInputError
from etl_meta.components.registry import (
    ENTRY_POINT_GROUP,
    UnknownComponentTypeError,
    get_component_type,
    known_component_types,
    register,
)
from etl_meta.components.sandbox import Sandbox, SandboxError, sandbox_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "ComponentContext",
    "ComponentFailed",
    "ComponentInputError",
    "ComponentResult",
    "ComponentType",
    "DataclassInfo",
    "Sandbox",
    "SandboxError",
    "SecretText",
    "SecretURL",
    "UnknownComponentTypeError",
    "get_component_type",
    "known_component_types",
    "register",
    "sandbox_of",
]
