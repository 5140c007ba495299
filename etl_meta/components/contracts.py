"""Component contracts: what a component type's configuration may hold, checked before it is stored.

A type's ``Config`` pydantic model is its contract: required fields, types, defaults and
constraints. Fields annotated :data:`SecretText` or :data:`SecretURL` (or typed
``pydantic.SecretStr``) are its secrets: encrypted at rest, masked wherever configuration is
shown, and never overridable at run time. ``SecretURL`` hides only a URL's password, so people can
see which database a component writes to (``postgresql://etl:***@warehouse/db``).

:func:`check_configuration` is what the store (``jobs.create``, ``components.create`` and
``update``), ``etl-meta apply`` and the runtime call: it returns every problem, each naming the
field, with a "did you mean" hint for unknown keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic

from etl_meta.errors import FieldProblem
from etl_meta.validation import STRICT_TYPE_MESSAGES, did_you_mean, key_label

if TYPE_CHECKING:
    from etl_meta.components.base import ComponentType

SecretKind = Literal["value", "url"]


@dataclass(frozen=True)
class SecretField:
    """Marks a ``Config`` field secret: ``value`` hides it whole, ``url`` hides its password."""

    kind: SecretKind = "value"


#: A secret string: encrypted at rest and masked whole.
SecretText = Annotated[pydantic.SecretStr, SecretField("value")]
#: A URL whose password (and sensitive query parameters) are secret; the rest stays visible.
SecretURL = Annotated[pydantic.SecretStr, SecretField("url")]


def secret_fields(config: type[pydantic.BaseModel]) -> dict[str, SecretKind]:
    """``{configuration key: secret kind}`` for the top-level fields of ``config``.

    A field is secret when it carries a :class:`SecretField` marker, or (kind ``value``) when it
    is typed ``pydantic.SecretStr``/``SecretBytes`` without one. Keys are the names used in
    configuration documents (the alias when a field has one).
    """
    found: dict[str, SecretKind] = {}
    for name, info in config.model_fields.items():
        key = info.alias or name
        markers = [m for m in info.metadata if isinstance(m, SecretField)]
        if markers:
            found[key] = markers[-1].kind
        elif _is_secret_type(info.annotation):
            found[key] = "value"
    return found


def _is_secret_type(annotation: Any) -> bool:
    if annotation in (pydantic.SecretStr, pydantic.SecretBytes):
        return True
    return any(_is_secret_type(arg) for arg in getattr(annotation, "__args__", ()))


def config_keys(config: type[pydantic.BaseModel]) -> list[str]:
    """The keys a configuration of ``config`` may hold (aliases where fields have them)."""
    return [info.alias or name for name, info in config.model_fields.items()]


def _model_at(config: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> Any:
    """The pydantic model holding the field at ``loc`` (for hints about nested unknown keys)."""
    model: Any = config
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or not isinstance(part, str):
            return None
        info = next((f for n, f in fields.items() if (f.alias or n) == part), None)
        model = info.annotation if info is not None else None
    return model


def problems_from(
    error: pydantic.ValidationError, config: type[pydantic.BaseModel], *, prefix: str
) -> list[FieldProblem]:
    """``error`` as field problems under ``prefix``, never quoting input, hinting at typos."""
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = tuple(item["loc"])
        # Keys are shown, values never; a key that is not a plain word is JSON-escaped, so
        # control or bidi characters in it cannot rewrite the terminal line of the error.
        path = ".".join(key_label(part) if isinstance(part, str) else str(part) for part in loc)
        message = STRICT_TYPE_MESSAGES.get(item["type"], item["msg"].removeprefix("Value error, "))
        if item["type"] == "extra_forbidden" and loc:
            model = _model_at(config, loc[:-1])
            hint = (
                did_you_mean(str(loc[-1]), config_keys(model))
                if isinstance(model, type) and issubclass(model, pydantic.BaseModel)
                else ""
            )
            message = f"unknown key{hint}"
        elif item["type"] == "missing":
            message = "required"
        problems.append(FieldProblem(f"{prefix}{path}" if path else prefix.rstrip("."), message))
    return problems


def check_configuration(
    implementation: ComponentType,
    configuration: Mapping[str, Any],
    *,
    prefix: str = "configuration.",
) -> list[FieldProblem]:
    """Every way ``configuration`` breaks ``implementation``'s contract (empty when it holds)."""
    try:
        implementation.Config.model_validate(dict(configuration))
    except pydantic.ValidationError as exc:
        return problems_from(exc, implementation.Config, prefix=prefix)
    return []
