"""Encryption at rest of secret configuration values (Fernet, keys rotated newest first).

A value is secret by the same rule as :func:`etl_meta.masking.mask_value`: its key matches the
sensitive-key list or is declared secret by the component type, at any depth of the JSON. Each
secret value is stored as one marked string, ``etlmeta:enc:v1:<fernet token>``, holding the value
serialized as JSON (so a secret mapping or number round-trips). Everything else stays in clear, so
analysts and diffs keep working.

Keys come from ``ETL_META_SECRET_KEYS`` (comma-separated Fernet keys, newest first: the newest
encrypts, all of them decrypt) or, when that is unset, from the key file
(``ETL_META_SECRET_KEY_FILE``, default ``$ETL_META_HOME/secret.key``). See ``docs/security.md``.

Writes fail closed: storing a secret with no key raises :class:`SecretKeyMissingError` naming the
field (never its value). Reads that cannot decrypt raise :class:`SecretDecryptError` naming the
field, or, when the caller asks for it (``strict=False``), show the masked value and log a warning.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from etl_meta.errors import EtlMetaError, ValidationError
from etl_meta.masking import (
    ENCRYPTED_PREFIX,
    MASK,
    declared_by_any_type,
    declared_secret_keys,
    is_sensitive_key,
)

if TYPE_CHECKING:
    from etl_meta.config import Settings

log = logging.getLogger(__name__)

#: Marks a stored value as encrypted; ``v1`` is Fernet over the JSON-serialized value.
PREFIX = ENCRYPTED_PREFIX
KEYS_ENV = "ETL_META_SECRET_KEYS"
_HINT = f"set {KEYS_ENV} or run `etl-meta secrets init` (or `etl-meta secrets generate-key`)"


class SecretsError(EtlMetaError):
    """Base class of the errors about encrypted secrets."""


class SecretKeyMissingError(SecretsError, ValidationError):
    """A secret was about to be stored but no key is configured; nothing was written."""


class SecretDecryptError(SecretsError):
    """A stored secret cannot be decrypted (no key configured, or none of the keys matches)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class SecretKeyConfigError(SecretsError):
    """The configured keys are not valid Fernet keys (the message never quotes them)."""


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(raw: str, *, source: str) -> list[str]:
    """The keys in ``raw`` (separated by commas or whitespace), each checked to be a Fernet key."""
    keys = [part for part in re.split(r"[,\s]+", raw) if part]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyConfigError(
                f"{source}: key #{position} is not a valid Fernet key "
                "(generate one with `etl-meta secrets generate-key`)"
            ) from None
    return keys


def load_keys(settings: Settings) -> list[str]:
    """The configured keys, newest first: ``ETL_META_SECRET_KEYS``, else the key file, else none."""
    if settings.secret_keys is not None and settings.secret_keys.get_secret_value().strip():
        return parse_keys(settings.secret_keys.get_secret_value(), source=KEYS_ENV)
    path = settings.resolved_secret_key_file
    if path.is_file():
        return parse_keys(path.read_text(encoding="ascii"), source=str(path))
    return []


def init_key_file(path: Path) -> bool:
    """Create ``path`` holding a new key, readable by its owner only (0600).

    Returns ``False`` (changing nothing) when the file already exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generate_key() + "\n")
    os.chmod(path, 0o600)
    return True


def _declared(component_type: str | None) -> frozenset[str]:
    # Component types declare their secret keys when they register: load them before deciding
    # what to encrypt, or a declared key (a writer's ``conn``) would be stored in clear.
    if component_type is None:
        # A document that names components but not their types (a run request's run config:
        # ``ops.<component>.config``): any key some type declares secret is a secret here too.
        # Decryption asks the same question, so both sides agree on every position.
        return declared_by_any_type()
    from etl_meta.components.registry import known_component_types

    known_component_types()
    return declared_secret_keys(component_type)


def is_encrypted(value: Any) -> bool:
    """True for a string this module produced by encrypting a value."""
    return isinstance(value, str) and value.startswith(PREFIX)


class Cipher:
    """Encrypts and decrypts the secret values of JSON documents with a list of keys."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._fernets = [Fernet(k.encode("ascii")) for k in keys]
        self._multi = MultiFernet(self._fernets) if self._fernets else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        return cls(load_keys(settings))

    @property
    def configured(self) -> bool:
        """Whether at least one key is configured."""
        return self._multi is not None

    # -- single values -------------------------------------------------------------------------

    def encrypt_value(self, value: Any, *, field: str, entity: str | None = None) -> str:
        """``value`` as a marked ciphertext under the newest key."""
        if self._multi is None:
            raise SecretKeyMissingError.single(
                field, f"is a secret but no encryption key is configured ({_HINT})", entity=entity
            )
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return PREFIX + self._multi.encrypt(payload).decode("ascii")

    def decrypt_value(self, text: str, *, field: str) -> Any:
        """The value a marked ciphertext holds; raises :class:`SecretDecryptError` if it can't."""
        if self._multi is None:
            raise SecretDecryptError(
                f"cannot decrypt secret {field}: no encryption key is configured ({_HINT})",
                field=field,
            )
        try:
            payload = self._multi.decrypt(text[len(PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretDecryptError(
                f"cannot decrypt secret {field}: none of the configured keys matches "
                f"(was an old key removed from {KEYS_ENV} before `etl-meta secrets rotate`?)",
                field=field,
            ) from None
        return json.loads(payload)

    def _under_newest_key(self, text: str) -> bool:
        try:
            self._fernets[0].decrypt(text[len(PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    # -- documents -----------------------------------------------------------------------------

    def encrypt_document(
        self,
        document: Any,
        *,
        component_type: str | None = None,
        field: str = "configuration",
        entity: str | None = None,
    ) -> Any:
        """A copy of ``document`` with every secret value encrypted (``None`` stays ``None``).

        Every secret value is encrypted, including one that already looks encrypted: input is
        never taken for ciphertext, so one component cannot borrow another's stored secret.
        """
        extra = _declared(component_type)

        def visit(value: Any, path: str) -> Any:
            if isinstance(value, Mapping):
                result = {}
                for key, item in value.items():
                    where = f"{path}.{key}"
                    if isinstance(key, str) and is_sensitive_key(key, extra) and item is not None:
                        result[key] = self.encrypt_value(item, field=where, entity=entity)
                    else:
                        result[key] = visit(item, where)
                return result
            if isinstance(value, list | tuple):
                return [visit(item, f"{path}.{i}") for i, item in enumerate(value)]
            return value

        return visit(document, field)

    def decrypt_document(
        self,
        document: Any,
        *,
        component_type: str | None = None,
        field: str = "configuration",
        strict: bool = True,
        decrypted: list[str] | None = None,
    ) -> Any:
        """A copy of ``document`` with its encrypted secret values decrypted.

        Only values at secret positions are decrypted. One that cannot be raises
        :class:`SecretDecryptError` (``strict``) or reads as :data:`~etl_meta.masking.MASK` with
        a warning naming the field. The path of every value actually decrypted is appended to
        ``decrypted`` (when given), so the caller can audit the read without the values.
        """
        extra = _declared(component_type)

        def visit(value: Any, path: str) -> Any:
            if isinstance(value, Mapping):
                result = {}
                for key, item in value.items():
                    where = f"{path}.{key}"
                    if isinstance(key, str) and is_sensitive_key(key, extra) and is_encrypted(item):
                        result[key] = self._decrypt_or_mask(item, where, strict, decrypted)
                    else:
                        result[key] = visit(item, where)
                return result
            if isinstance(value, list | tuple):
                return [visit(item, f"{path}.{i}") for i, item in enumerate(value)]
            return value

        return visit(document, field)

    def _decrypt_or_mask(
        self, text: str, field: str, strict: bool, decrypted: list[str] | None
    ) -> Any:
        try:
            value = self.decrypt_value(text, field=field)
        except SecretDecryptError as exc:
            if strict:
                raise
            log.warning("%s; showing it masked", exc)
            return MASK
        if decrypted is not None:
            decrypted.append(field)
        return value

    def reencrypt_document(
        self, document: Any, *, component_type: str | None = None, field: str = "configuration"
    ) -> tuple[Any, bool]:
        """``(document, changed)``: every secret under the newest key, plaintext ones encrypted.

        Secrets already under the newest key are left as they are, so running it again changes
        nothing (rotation and the data migration are resumable).
        """
        extra = _declared(component_type)
        changed = False

        def visit(value: Any, path: str) -> Any:
            nonlocal changed
            if isinstance(value, Mapping):
                result = {}
                for key, item in value.items():
                    where = f"{path}.{key}"
                    if isinstance(key, str) and is_sensitive_key(key, extra) and item is not None:
                        if is_encrypted(item):
                            if self._multi is None or self._under_newest_key(item):
                                result[key] = item
                                continue
                            item = self.decrypt_value(item, field=where)
                        result[key] = self.encrypt_value(item, field=where)
                        changed = True
                    else:
                        result[key] = visit(item, where)
                return result
            if isinstance(value, list | tuple):
                return [visit(item, f"{path}.{i}") for i, item in enumerate(value)]
            return value

        return visit(document, field), changed


def has_plaintext_secrets(document: Any, *, component_type: str | None = None) -> bool:
    """True when ``document`` holds a secret value stored in clear (not yet encrypted)."""
    extra = _declared(component_type)

    def visit(value: Any) -> bool:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and is_sensitive_key(key, extra) and item is not None:
                    if not is_encrypted(item):
                        return True
                elif visit(item):
                    return True
            return False
        if isinstance(value, list | tuple):
            return any(visit(item) for item in value)
        return False

    return visit(document)
