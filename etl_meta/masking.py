"""Recognise secret configuration values and mask them wherever data leaves the store.

A value is secret when its key matches the sensitive-key list (case-insensitively, at any depth of
the JSON, after reducing Unicode look-alikes to the ASCII they imitate), or when the component's
type declares the key secret. Masking replaces the value, never the key, so people can still see
*that* a password is configured.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache
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
_registry_loaded = False


#: Letters that render as nothing although Unicode files them as letters (Hangul fillers).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _normalize(key: str) -> str:
    """The form in which keys are compared: lower case, ``-`` as ``_``, look-alikes resolved.

    A key that is not printable ASCII is first reduced to the ASCII it looks like (see
    :func:`_skeleton`), so ``pаssword`` with a Cyrillic ``а``, full-width ``ｐａｓｓｗｏｒｄ`` and
    ``pass\u200bword`` with a zero-width space are as secret as ``password``. Otherwise such a
    key would escape masking *and* encryption at rest, which asks the same question. Matching too
    much only masks more; matching too little stores a secret in plain text.
    """
    if not (key.isascii() and key.isprintable()):
        key = _skeleton(key)
    return key.replace("-", "_").lower()


def _skeleton(key: str) -> str:
    """``key`` as the ASCII it imitates: compatibility forms folded (NFKD: full width, math
    letters, ligatures), invisible characters and combining marks dropped (zero-width spaces and
    joiners, bidi controls, variation selectors, accents), and letters of other scripts that are
    confusable with ASCII replaced by it (Unicode's confusables table, UTS #39)."""
    lookalikes = _ascii_lookalikes()
    kept = []
    for char in unicodedata.normalize("NFKD", key):
        if char.isascii():
            if char.isprintable():
                kept.append(char)
            continue
        # C*: controls, format (Cf: zero-width, bidi), surrogates, private use, unassigned;
        # M*: combining marks, which only decorate the letter before them.
        if unicodedata.category(char)[0] in "CM" or char in _BLANK_LETTERS:
            continue
        kept.append(lookalikes.get(char, char))
    return "".join(kept)


@cache
def _ascii_lookalikes() -> dict[str, str]:
    """``{character: the ASCII it is confusable with}``, built on first use.

    Loaded lazily: the table is large, and printable ASCII keys (nearly all) never need it.
    """
    from confusable_homoglyphs.confusables import confusables_data

    table = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in homoglyphs:
            ascii_form = glyph["c"]
            if ascii_form.isascii() and ascii_form.replace("_", "a").replace("-", "a").isalnum():
                table[char] = ascii_form
                break
    return table


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


def declared_by_any_type() -> frozenset[str]:
    """Every key some registered component type declares secret (built-ins and plugins loaded).

    What to mask when the type is not known: a run config override (``ops.<component>.config``,
    ``components.<component>``) or an audit diff of a run names components, not their types, and
    a declared key (a writer's ``connection_url``) in it is as secret as in the stored component.
    """
    global _registry_loaded
    if not _registry_loaded:
        # Set first: loading registers the types, which declares their keys through this module.
        _registry_loaded = True
        from etl_meta.components.registry import known_component_types

        known_component_types()
    with _declared_lock:
        return frozenset().union(*_declared.values())


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
    is masked whole (a sensitive key holding a mapping hides the whole mapping). Without a
    ``component_type``, keys that *any* type declares secret are masked: over-masking a value
    shown to people is harmless, showing a declared secret is not.
    """
    if component_type is None:
        return _mask(value, declared_by_any_type())
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
