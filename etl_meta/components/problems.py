"""Whether a component definition keeps its type's contract: the store checks it before every
write (a component is stored only if its type accepts it), ``etl-meta apply`` before any.

A type this process does not know is an error, unless the operator declared it installed only on
workers (``ETL_META_WORKER_COMPONENT_TYPES``): then its configuration is stored unchecked and the
worker checks it when the component runs. Never silence: an unknown type is either declared or
refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from etl_meta.components.contracts import check_configuration
from etl_meta.components.registry import (
    UnknownComponentTypeError,
    get_component_type,
    known_component_types,
)
from etl_meta.errors import FieldProblem, ValidationError
from etl_meta.validation import did_you_mean

if TYPE_CHECKING:
    from etl_meta.config import Settings

#: The variable naming the component types installed only on workers (``Settings``).
WORKER_TYPES_ENV = "ETL_META_WORKER_COMPONENT_TYPES"


def component_problems(
    settings: Settings,
    component_type: str,
    configuration: Mapping[str, Any],
    *,
    prefix: str = "",
) -> list[FieldProblem]:
    """Every way ``configuration`` breaks the contract of ``component_type`` under ``settings``.

    Field paths are ``<prefix>component_type`` or ``<prefix>configuration.<key>…``.
    """
    try:
        implementation = get_component_type(component_type)
    except UnknownComponentTypeError:
        if settings.is_worker_component_type(component_type):
            return []
        known = sorted(known_component_types())
        return [
            FieldProblem(
                f"{prefix}component_type",
                f"unknown component type{did_you_mean(component_type, known)}; known types: "
                f"{', '.join(known)} (a type installed only on workers must be declared in "
                f"{WORKER_TYPES_ENV})",
            )
        ]
    problems = check_configuration(implementation, configuration, prefix=f"{prefix}configuration.")
    if problems:
        return problems
    config = implementation.Config.model_validate(dict(configuration))
    return [
        FieldProblem(prefix + problem.field, problem.message)
        for problem in implementation.check_definition(config, settings)
    ]


def check_component(
    settings: Settings,
    component_type: str,
    configuration: Mapping[str, Any],
    *,
    prefix: str = "",
) -> None:
    """Raise :class:`ValidationError` listing every problem :func:`component_problems` finds."""
    problems = component_problems(settings, component_type, configuration, prefix=prefix)
    if problems:
        raise ValidationError(problems, entity="component")
