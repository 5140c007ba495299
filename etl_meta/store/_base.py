"""What every entity namespace of the store shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pydantic

from etl_meta.masking import is_sensitive_key, normalize_key, secret_rules
from etl_meta.repository import audit as audit_repo
from etl_meta.secret_urls import secret_parts
from etl_meta.secrets import SecretDecryptError
from etl_meta.validation import validate_input

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from etl_meta.store.core import MetadataStore


class StoreAPI:
    """Base of ``store.jobs``, ``store.components``, …: access to the store's transaction."""

    #: The attribute name on the store (``jobs``, ``components``, ...), for messages and audit.
    namespace: str = ""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    @property
    def store(self) -> MetadataStore:
        """The store this namespace belongs to (its role is checked on every call)."""
        return self._store

    def _tx(self, *, readonly: bool = False) -> Any:
        return self._store.transaction(readonly=readonly)

    def _validate(
        self, model: type[pydantic.BaseModel], data: Any, *, entity: str, prefix: str = ""
    ) -> Any:
        settings = self._store.settings
        context = {
            "max_json_bytes": settings.max_json_bytes,
            "max_json_depth": settings.max_json_depth,
        }
        return validate_input(model, data, entity=entity, context=context, prefix=prefix)

    def _audit_decrypt(
        self, *, entity_type: str, entity_key: str, entity_id: int | None, after: dict[str, Any]
    ) -> None:
        """Record that secrets were decrypted for the caller (paths only, never values)."""
        with self._tx() as session:
            record_change(
                self._store,
                session,
                action="decrypt",
                entity_type=entity_type,
                entity_key=entity_key,
                entity_id=entity_id,
                after=after,
            )


def record_change(
    store: MetadataStore,
    session: Session,
    *,
    action: str,
    entity_type: str,
    entity_key: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    component_type: str | None = None,
) -> None:
    """Record a change in the audit trail, in ``session``'s transaction, as ``store``'s actor;
    ``before``/``after`` as stored (secrets encrypted), masked here.

    Where a secret changed, masked values alike on both sides (``***`` → ``***``) would hide
    that anything happened: the paths of the secrets whose plaintext changed are listed in
    ``after["masked_changes"]`` (never their values).
    """
    masked_changes = (
        _changed_secrets(store, before, after, component_type)
        if before is not None and after is not None
        else []
    )
    audit_repo.record_event(
        session,
        actor=store.actor,
        action=action,
        entity_type=entity_type,
        entity_key=entity_key,
        entity_id=entity_id,
        before=before,
        after=after,
        component_type=component_type,
        masked_changes=masked_changes,
    )


def _changed_secrets(
    store: MetadataStore,
    before: dict[str, Any],
    after: dict[str, Any],
    component_type: str | None,
) -> list[str]:
    # Compare plaintext: Fernet tokens differ on every encryption, so ciphertext would mark
    # every secret of a new configuration version changed. Decrypted values stay here: no
    # ``decrypt`` event, nothing revealed. A side that cannot be decrypted compares as
    # stored, which marks its secrets changed (unknown is not "unchanged").
    cipher = store.cipher
    try:
        plain_before = cipher.decrypt_document(before, component_type=component_type)
        plain_after = cipher.decrypt_document(after, component_type=component_type)
    except SecretDecryptError:
        plain_before, plain_after = before, after
    return changed_secrets(plain_before, plain_after, component_type=component_type)


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys whose values differ, as ``(before, after)`` restricted to those keys.

    A key on one side only reads as ``None`` on the other, so both documents name every change.
    """
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def relative_paths(paths: Iterable[str], prefix: str) -> list[str]:
    """``job.c.configuration.db.password`` → ``db.password``: the paths an audit event names."""
    return [path.removeprefix(prefix).removeprefix(".") for path in paths]


def changed_secrets(before: Any, after: Any, *, component_type: str | None = None) -> list[str]:
    """Dotted paths of the secret values that differ between two plaintext documents.

    Secret positions follow the masking rules (sensitive keys at any depth, keys the component
    type declares). Under a URL key only the URL's secret parts count (a new host with the same
    password is no secret change; the masked URL shows it). Example::

        changed_secrets({"db": {"password": "a"}}, {"db": {"password": "b"}}) == ["db.password"]
    """
    keys, urls = secret_rules(component_type)
    found: list[str] = []

    def secret_differs(old: Any, new: Any, is_url: bool) -> bool:
        if is_url and isinstance(old, str) and isinstance(new, str):
            old_parts = secret_parts(old, is_sensitive_key)
            new_parts = secret_parts(new, is_sensitive_key)
            if old_parts is not None and new_parts is not None:
                return old_parts != new_parts
        return bool(old != new)

    def visit(old: Any, new: Any, path: str) -> None:
        if isinstance(old, Mapping) or isinstance(new, Mapping):
            old = old if isinstance(old, Mapping) else {}
            new = new if isinstance(new, Mapping) else {}
            for key in [*old, *(k for k in new if k not in old)]:
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and is_sensitive_key(key, keys):
                    if secret_differs(old.get(key), new.get(key), normalize_key(key) in urls):
                        found.append(where)
                else:
                    visit(old.get(key), new.get(key), where)
        elif isinstance(old, list | tuple) and isinstance(new, list | tuple):
            for index in range(max(len(old), len(new))):
                visit(
                    old[index] if index < len(old) else None,
                    new[index] if index < len(new) else None,
                    f"{path}.{index}" if path else str(index),
                )

    visit(before, after, "")
    return found
