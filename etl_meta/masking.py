"""Recognise secret configuration values and mask them wherever data leaves the store.

A value is secret when its key matches the sensitive-key list (case-insensitively, at any depth of
the JSON, after reducing Unicode look-alikes to the ASCII they imitate), or when the component's
type declares the key secret. Masking replaces the value, never the key, so people can still see
*that* a password is configured. A key declared a URL secret (``SecretURL``) hides only the URL's
password and sensitive query values (``postgresql://etl:***@warehouse/db``); a value there that is
not a URL :mod:`etl_meta.secret_urls` understands is masked whole.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any
from urllib.parse import quote

from etl_meta.secret_urls import replace_secret_parts

MASK = "***"
#: How values encrypted at rest start (see :mod:`etl_meta.secrets`): masked wherever they are.
ENCRYPTED_PREFIX = "etlmeta:enc:v1:"
#: How an encrypted part of a URL secret starts: :data:`ENCRYPTED_PREFIX`, percent-encoded.
ENCODED_PREFIX = quote(ENCRYPTED_PREFIX, safe="")

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
_declared_urls: dict[str, frozenset[str]] = {}
#: Declares every component type's secret keys (see :func:`register_declarations_loader`).
_declarations_loader: Callable[[], object] | None = None
_declarations_loaded = False


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


def normalize_key(key: str) -> str:
    """``key`` in the form declared keys are kept and compared in (see :func:`_normalize`)."""
    return _normalize(key)


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


def register_declarations_loader(load: Callable[[], object]) -> None:
    """Have ``load`` declare the component types' secret keys before masking first needs them.

    The component registry registers its loader when it is imported (``import etl_meta`` imports
    it): loading the built-in and plug-in types registers each, which declares its keys through
    :func:`declare_secret_keys`. The registry pushes into masking, so masking, which the models
    below the registry use, never imports it; and plug-ins still load only on first use.
    """
    global _declarations_loader, _declarations_loaded
    with _declared_lock:
        _declarations_loader = load
        _declarations_loaded = False


def declare_secret_keys(component_type: str, keys: Iterable[str]) -> None:
    """Declare configuration keys of ``component_type`` secret, in addition to the built-in list.

    Component-type implementations call this when they register, so that e.g. a ``conn`` key of a
    database writer is masked although its name looks harmless.
    """
    with _declared_lock:
        merged = set(_declared.get(component_type, frozenset()))
        merged.update(_normalize(k) for k in keys)
        _declared[component_type] = frozenset(merged)


def declare_secret_urls(component_type: str, keys: Iterable[str]) -> None:
    """Declare configuration keys of ``component_type`` to hold URLs whose password is secret.

    They are secret keys too (:func:`declared_secret_keys`); masking and encryption at rest
    treat only the URL's password and sensitive query values as the secret.
    """
    keys = [_normalize(k) for k in keys]
    declare_secret_keys(component_type, keys)
    with _declared_lock:
        _declared_urls[component_type] = _declared_urls.get(component_type, frozenset()) | set(keys)


def declared_secret_keys(component_type: str | None) -> frozenset[str]:
    """The keys ``component_type`` declared secret, URL keys included (empty when none)."""
    if component_type is None:
        return frozenset()
    return _declared.get(component_type, frozenset())


def declared_secret_urls(component_type: str | None) -> frozenset[str]:
    """The keys ``component_type`` declared URL secrets (empty when none or unknown)."""
    if component_type is None:
        return frozenset()
    return _declared_urls.get(component_type, frozenset())


def secret_rules(component_type: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """``(declared secret keys, of which URL keys)`` to apply to ``component_type``'s documents.

    Without a type: every key some type declares secret, and as URL keys only those no type
    declares a plain secret (a key both ways is masked whole: showing too little is harmless).
    """
    _load_declarations()
    if component_type is None:
        keys = declared_by_any_type()
        with _declared_lock:
            urls = frozenset().union(*_declared_urls.values())
            values = frozenset().union(
                *(
                    declared - _declared_urls.get(name, frozenset())
                    for name, declared in _declared.items()
                )
            )
        return keys, urls - values
    return declared_secret_keys(component_type), declared_secret_urls(component_type)


def declared_by_any_type() -> frozenset[str]:
    """Every key some registered component type declares secret (built-ins and plugins loaded).

    What to mask when the type is not known: a run config override (``ops.<component>.config``,
    ``components.<component>``) or an audit diff of a run names components, not their types, and
    a declared key (a writer's ``connection_url``) in it is as secret as in the stored component.
    """
    _load_declarations()
    with _declared_lock:
        return frozenset().union(*_declared.values())


def _load_declarations() -> None:
    # Types declare their secret keys when they register: load them (built-ins and plugins)
    # before deciding what is secret, or a declared key would show.
    global _declarations_loaded
    if not _declarations_loaded and _declarations_loader is not None:
        # Set first: loading registers the types, which declares their keys through this module.
        _declarations_loaded = True
        _declarations_loader()


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
    is masked whole (a sensitive key holding a mapping hides the whole mapping), except under a
    declared URL key, where only the URL's secret parts are (:func:`mask_url`). Without a
    ``component_type``, keys that *any* type declares secret are masked: over-masking a value
    shown to people is harmless, showing a declared secret is not.
    """
    keys, urls = secret_rules(component_type)
    return _mask(value, keys, urls)


def mask_url(text: str) -> str | None:
    """``text`` with its password and sensitive query values masked; ``None`` if not a URL.

    ``postgresql://etl:pw@warehouse/db`` → ``postgresql://etl:***@warehouse/db``; a URL without
    secret parts comes back whole. Encrypted parts (stored URLs) are masked like clear ones.
    ``None`` (mask it whole) when :mod:`etl_meta.secret_urls` does not understand ``text``, or
    ciphertext would still show.
    """
    masked = replace_secret_parts(text, is_sensitive_key, lambda _part: MASK)
    return None if masked is None or looks_encrypted(masked) else masked


def looks_encrypted(text: str) -> bool:
    """True when ``text`` holds an encrypted value anywhere, as is or percent-encoded in a URL."""
    return ENCRYPTED_PREFIX in text or ENCODED_PREFIX.lower() in text.lower()


def mask_secret(value: Any, *, is_url: bool) -> Any:
    """What a secret ``value`` shows as: :data:`MASK`, or for a URL key its masked URL."""
    if value is None:
        return None
    if is_url and isinstance(value, str):
        return mask_url(value) or MASK
    return MASK


def _mask(value: Any, extra: frozenset[str], urls: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        masked = {}
        for key, item in value.items():
            if isinstance(key, str) and is_sensitive_key(key, extra):
                masked[key] = mask_secret(item, is_url=_normalize(key) in urls)
            else:
                masked[key] = _mask(item, extra, urls)
        return masked
    if isinstance(value, list | tuple):
        return [_mask(item, extra, urls) for item in value]
    if isinstance(value, str) and looks_encrypted(value):
        # Ciphertext under a key this process does not know is secret: a URL keeps its
        # visible parts when its encrypted ones are where a URL's secrets go.
        return mask_url(value) or MASK
    return value


#: Why an override of a secret is refused (the error's field path says which).
SECRET_OVERRIDE_MESSAGE = "a secret cannot be overridden at run time; store it with etl-meta apply"


def overridden_secrets(
    stored: Any, overrides: Any, *, component_type: str | None = None
) -> list[str]:
    """Where ``overrides`` would change a secret of ``stored``: dotted paths such as
    ``password``, ``conn.token`` or ``targets.0.api_key`` (empty when it changes none).

    Run-time overrides may only echo a secret back as it is shown (:func:`is_masked_echo`),
    which means "the stored value". ``stored`` may be plaintext or as stored (encrypted): both
    mask alike. Without a ``component_type``, any type's declared keys count (fail closed).
    """
    keys, urls = secret_rules(component_type)
    found: list[str] = []

    def visit(base: Any, override: Any, path: str) -> None:
        if isinstance(override, Mapping):
            base = base if isinstance(base, Mapping) else {}
            for key, value in override.items():
                where = f"{path}{key}"
                if isinstance(key, str) and is_sensitive_key(key, keys):
                    if not is_masked_echo(value, base.get(key), is_url=_normalize(key) in urls):
                        found.append(where)
                else:
                    visit(base.get(key), value, where + ".")
        elif isinstance(override, list | tuple):
            base = base if isinstance(base, list | tuple) else []
            for index, item in enumerate(override):
                visit(base[index] if index < len(base) else None, item, f"{path}{index}.")

    visit(stored, overrides, "")
    return found


def is_masked_echo(override: Any, stored: Any, *, is_url: bool = False) -> bool:
    """Whether ``override`` of a secret only echoes ``stored`` back as people see it.

    True for :data:`MASK`, for stored ciphertext (never taken for a value), and for what
    :func:`mask_secret` shows of ``stored`` (for a URL key, the stored URL masked: a URL with
    ``***`` as password but another host is *not* an echo, it would send the stored password
    elsewhere). An override equal to the stored plaintext is no echo either: accepting it would
    tell whoever tries values whether they guessed the secret.
    """
    if override == MASK or (isinstance(override, str) and override.startswith(ENCRYPTED_PREFIX)):
        return True
    # What people see of the stored value: ``***``, ``null``, the masked URL (or the whole URL
    # when it holds no secret part, so nothing can be guessed through it).
    return bool(override == mask_secret(stored, is_url=is_url))


def has_secrets(value: Any, *, component_type: str | None = None) -> bool:
    """True when ``value`` holds at least one value that :func:`mask_value` would hide."""
    return bool(mask_value(value, component_type=component_type) != _plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
