"""Encryption at rest of secret configuration values (Fernet, keys rotated newest first).

A value is secret by the same rule as :func:`etl_meta.masking.mask_value`: its key matches the
sensitive-key list or is declared secret by the component type, at any depth of the JSON. Each
secret value is stored as one marked string, ``etlmeta:enc:v1:<fernet token>``, holding the value
serialized as JSON (so a secret mapping or number round-trips). Everything else stays in clear, so
analysts and diffs keep working. Under a key declared a URL secret (``SecretURL``) only the URL's
password and sensitive query values are encrypted, each stored percent-encoded in its place
(``postgresql://etl:etlmeta%3Aenc%3Av1%3A<token>@warehouse/db``), so the host stays readable; a
value there that is not a URL :mod:`etl_meta.secret_urls` understands is encrypted whole.

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from etl_meta.errors import EtlMetaError, ValidationError
from etl_meta.masking import (
    ENCODED_PREFIX,
    ENCRYPTED_PREFIX,
    MASK,
    is_sensitive_key,
    normalize_key,
    secret_rules,
)
from etl_meta.secret_urls import replace_secret_parts, secret_parts

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


class _Rules:
    """Which keys of a document are secret, and which of them hold URL secrets."""

    def __init__(self, component_type: str | None) -> None:
        # Without a type (a run request's run config names components, not their types), any
        # key some type declares secret is a secret here too; decryption asks the same
        # question, so both sides agree on every position. secret_rules loads the registry
        # first, or a declared key (a writer's ``conn``) would be stored in clear.
        self.keys, self.urls = secret_rules(component_type)

    def kind(self, key: Any) -> str | None:
        """``"url"``, ``"value"``, or ``None`` when a value under ``key`` is no secret."""
        if not isinstance(key, str) or not is_sensitive_key(key, self.keys):
            return None
        return "url" if normalize_key(key) in self.urls else "value"


def _encrypted_parts(value: Any) -> list[str]:
    """The encrypted secret parts of a URL-shaped ``value`` (none for anything else)."""
    parts = secret_parts(value, is_sensitive_key) if isinstance(value, str) else None
    return [part for part in parts or () if part.startswith(ENCODED_PREFIX)]


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

    def _newest(self, text: str) -> bool:
        """Whether ciphertext ``text`` is under the newest key (``False`` with no key)."""
        if not self._fernets:
            return False
        try:
            self._fernets[0].decrypt(text[len(PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    # -- secrets: one value, or the secret parts of a URL --------------------------------------

    def encrypt_secret(
        self, value: Any, *, url: bool, field: str, entity: str | None = None
    ) -> Any:
        """A secret as stored: under a URL key its secret parts encrypted in place (a URL with
        none stays as it is), anything else (a value not understood as a URL) encrypted whole."""
        if url and isinstance(value, str):
            stored = replace_secret_parts(
                value,
                is_sensitive_key,
                lambda part: quote(self.encrypt_value(part, field=field, entity=entity), safe=""),
            )
            if stored is not None:
                return stored
        return self.encrypt_value(value, field=field, entity=entity)

    def _decrypt_secret(
        self, value: Any, field: str, strict: bool, decrypted: list[str] | None
    ) -> Any:
        """``value`` with what is encrypted in it decrypted, whole or (a URL) part by part.

        Both forms are read wherever the key is secret, whatever its declared kind today, so a
        type that switches a key between ``SecretText`` and ``SecretURL`` keeps its secrets.
        """
        if is_encrypted(value):
            return self._decrypt_or_mask(value, field, strict, decrypted)
        if not _encrypted_parts(value):
            return value
        found: list[str] = []

        def part(text: str) -> str:
            if not text.startswith(ENCODED_PREFIX):
                return text  # in clear (stored before the key was a URL secret)
            plain = self._decrypt_or_mask(unquote(text), field, strict, found)
            return plain if isinstance(plain, str) else MASK  # only strings go into a URL

        result = replace_secret_parts(value, is_sensitive_key, part)
        if found and decrypted is not None:
            decrypted.append(field)
        return result

    def _reencrypt_secret(self, value: Any, *, url: bool, field: str) -> tuple[Any, bool]:
        """``(stored, changed)``: ``value`` with every secret under the newest key."""
        parts = _encrypted_parts(value)
        split = secret_parts(value, is_sensitive_key) if isinstance(value, str) else None
        if url and split is not None:
            # Keyless (the data migration): only parts in clear need work, and they fail closed.
            current = [p for p in parts if self._multi is None or self._newest(unquote(p))]
            if len(current) == len(split):
                return value, False
            plain = self._decrypt_secret(value, field, True, None)
            return self.encrypt_secret(plain, url=True, field=field), True
        if is_encrypted(value):
            if self._multi is None:
                return value, False
            plain = self.decrypt_value(value, field=field)
            # Whole is right for a value, and for a URL key holding no URL; a URL stored whole
            # (before its key was declared a URL secret) is split now.
            whole = (
                not url
                or not isinstance(plain, str)
                or secret_parts(plain, is_sensitive_key) is None
            )
            if whole and self._newest(value):
                return value, False
            return self.encrypt_secret(plain, url=url, field=field), True
        plain = self._decrypt_secret(value, field, True, None) if parts else value
        return self.encrypt_secret(plain, url=url, field=field), True

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
        return _walk(
            document,
            _Rules(component_type),
            field,
            lambda item, kind, where: self.encrypt_secret(
                item, url=kind == "url", field=where, entity=entity
            ),
        )

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
        a warning naming the field (in a URL, only the part that cannot be). The path of every
        value actually decrypted is appended to ``decrypted`` (when given), so the caller can
        audit the read without the values.
        """
        return _walk(
            document,
            _Rules(component_type),
            field,
            lambda item, _kind, where: self._decrypt_secret(item, where, strict, decrypted),
        )

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
        changed = False

        def reencrypt(item: Any, kind: str, where: str) -> Any:
            nonlocal changed
            stored, item_changed = self._reencrypt_secret(item, url=kind == "url", field=where)
            changed = changed or item_changed
            return stored

        return _walk(document, _Rules(component_type), field, reencrypt), changed


def _walk(document: Any, rules: _Rules, field: str, secret: Callable[[Any, str, str], Any]) -> Any:
    """A copy of ``document`` with ``secret(value, kind, path)`` in place of each secret value
    that is not ``None``, at any depth (``kind``: ``"value"`` or ``"url"``)."""

    def visit(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            result = {}
            for key, item in value.items():
                where = f"{path}.{key}"
                kind = rules.kind(key)
                if kind is not None and item is not None:
                    result[key] = secret(item, kind, where)
                else:
                    result[key] = visit(item, where)
            return result
        if isinstance(value, list | tuple):
            return [visit(item, f"{path}.{i}") for i, item in enumerate(value)]
        return value

    return visit(document, field)


def has_plaintext_secrets(document: Any, *, component_type: str | None = None) -> bool:
    """True when ``document`` holds a secret value (or a URL's secret part) stored in clear."""
    rules = _Rules(component_type)

    def in_clear(value: Any, kind: str) -> bool:
        if is_encrypted(value):
            return False
        parts = secret_parts(value, is_sensitive_key) if isinstance(value, str) else None
        if parts is not None and (kind == "url" or _encrypted_parts(value)):
            return any(not part.startswith(ENCODED_PREFIX) for part in parts)
        return True

    def visit(value: Any) -> bool:
        if isinstance(value, Mapping):
            for key, item in value.items():
                kind = rules.kind(key)
                if kind is not None and item is not None:
                    if in_clear(item, kind):
                        return True
                elif visit(item):
                    return True
            return False
        if isinstance(value, list | tuple):
            return any(visit(item) for item in value)
        return False

    return visit(document)
