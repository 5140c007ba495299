"""Which implementation runs each ``component_type``: built-ins, decorators, entry points.

Third-party packages add types through the ``etl_meta.component_types`` entry-point group
(``name = "package.module:ClassName"``); code in the same process can use :func:`register`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Iterable
from typing import TypeVar

from etl_meta.components.base import ComponentType
from etl_meta.masking import (
    declare_secret_keys,
    declare_secret_urls,
    register_declarations_loader,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "etl_meta.component_types"
T = TypeVar("T", bound=type[ComponentType])

_lock = threading.Lock()
_types: dict[str, type[ComponentType]] = {}
_loaded_entry_points = False


class UnknownComponentTypeError(LookupError):
    """No implementation is registered for a ``component_type``."""

    def __init__(self, component_type: str, known: Iterable[str]) -> None:
        self.component_type = component_type
        super().__init__(
            f"unknown component type {component_type!r}; known types: {', '.join(sorted(known))}"
        )


def register(cls: T) -> T:
    """Class decorator: make ``cls`` the implementation of ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty `name`")
    if "secret_keys" in vars(cls):
        raise TypeError(
            f"{cls.__qualname__}: `secret_keys` is gone; type the fields SecretText or SecretURL "
            "(etl_meta.components.contracts) instead"
        )
    with _lock:
        existing = _types.get(name)
        if existing is not None and existing is not cls:
            log.warning("component type %r: %s replaces %s", name, cls, existing)
        _types[name] = cls
    secrets = cls.secret_fields()
    if secrets:
        declare_secret_keys(name, [key for key, kind in secrets.items() if kind == "value"])
        declare_secret_urls(name, [key for key, kind in secrets.items() if kind == "url"])
    return cls


def _load_builtins_and_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    import etl_meta.components.builtin  # noqa: F401  (registers the built-in types)

    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry_point.load()
        except Exception:  # a broken plugin must not take every other type down with it
            log.exception("could not load component type entry point %r", entry_point.value)
            continue
        if getattr(cls, "name", None) != entry_point.name:
            log.warning(
                "entry point %r loads a type named %r; registering it under %r",
                entry_point.name,
                getattr(cls, "name", None),
                entry_point.name,
            )
            cls.name = entry_point.name
        register(cls)
    _loaded_entry_points = True


# Masking asks for every type's declared secret keys before it decides what is secret.
register_declarations_loader(_load_builtins_and_entry_points)


def get_component_type(name: str) -> ComponentType:
    """An instance of the implementation of ``name``; raises :class:`UnknownComponentTypeError`."""
    _load_builtins_and_entry_points()
    cls = _types.get(name)
    if cls is None:
        raise UnknownComponentTypeError(name, _types)
    return cls()


def known_component_types() -> dict[str, type[ComponentType]]:
    """Every registered type by name."""
    _load_builtins_and_entry_points()
    return dict(_types)
