"""Recognise secret configuration values and mask them wherever data leaves the store.

A value is secret when its key matches the sensitive-key list (case-insensitively, at any depth of
the JSON), or when the component's type declares the key secret. Masking replaces the value, never
the key, so people can still see *that* a password is configured.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
#: How values encrypted at rest start (see :mod:`etl_meta.secrets`): masked wherever they are.
ENCRYPTED_PREFIX = "etlmeta:enc:v1:"

#: Substrings that make a key sensitive wherever they appear in it (``db_password``, ``apiKey``).
SENSITIVE_KEY_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "privatekey",
    "credential",
    "access_key",
    "accesskey",
    "auth",
    "session_key",
    "signature",
    "passphrase",
    "client_secret",
    "connection_string",
    "dsn",
)
_SENSITIVE_RE = re.compile("|".join(re.escape(p) for p in SENSITIVE_KEY_PARTS), re.IGNORECASE)
# Keys that contain a sensitive part but name non-secret facts about it.
_NOT_SENSITIVE = frozenset({"author", "authors", "authority", "token_type", "auth_type"})

_declared_lock = threading.Lock()
_declared: dict[str, frozenset[str]] = {}


def _normalize(key: str) -> str:
    return key.replace("-", "_").lower()


def declare_secret_keys(component_type: str, keys: Iterable[str]) -> None:
    """Declare configuration keys of ``component_type`` secret, in addition to the built-in list.

    Component-type implementations call this when they register, so that e.g. a ``conn`` key of a
    database writer is masked although its name looks harmless.
    """
    with _declared_lock:
        merged = set(_declared.get(component_type, frozenset()))
        merged.update(_normalize(k) for k in keys)
        _declared[component_type] = frozenset(merged)


def declared_secret_keys(component_type: str | None) -> frozenset[str]:
    """The keys ``component_type`` declared secret (empty when none or unknown)."""
    if component_type is None:
        return frozenset()
    return _declared.get(component_type, frozenset())


def is_sensitive_key(key: str, extra_keys: Iterable[str] = ()) -> bool:
    """True when a value stored under ``key`` must be treated as a secret."""
    normalized = _normalize(key)
    if normalized in extra_keys:
        return True
    if normalized in _NOT_SENSITIVE:
        return False
    return _SENSITIVE_RE.search(normalized) is not None


def mask_value(value: Any, *, component_type: str | None = None) -> Any:
    """A deep copy of ``value`` with every secret value replaced by :data:`MASK`.

    Mappings are walked at any depth and lists element by element; anything under a sensitive key
    is masked whole (a sensitive key holding a mapping hides the whole mapping).
    """
    return _mask(value, declared_secret_keys(component_type))


def _mask(value: Any, extra: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (
                MASK
                if isinstance(key, str) and is_sensitive_key(key, extra) and value[key] is not None
                else _mask(value[key], extra)
            )
            for key in value
        }
    if isinstance(value, list | tuple):
        return [_mask(item, extra) for item in value]
    if isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX):
        return MASK  # ciphertext under a key this process does not know is secret
    return value


def has_secrets(value: Any, *, component_type: str | None = None) -> bool:
    """True when ``value`` holds at least one value that :func:`mask_value` would hide."""
    return mask_value(value, component_type=component_type) != _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
