"""``store.secrets``: re-encrypt every stored secret under the newest key (key rotation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from etl_meta.access import Role, requires
from etl_meta.errors import ValidationError
from etl_meta.models import Component, ComponentConfig, RunRequest
from etl_meta.secrets import SecretKeyMissingError
from etl_meta.store._base import StoreAPI, record_change

MAX_BATCH_SIZE = 10_000


@dataclass
class RotationResult:
    """What one ``rotate`` call did: rows re-encrypted per table, batches that changed rows."""

    rows: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class _Target:
    name: str
    id_column: Any
    json_column: Any
    # Rows of (id, JSON document, component type or NULL).
    query: Callable[[], sa.Select[int, dict[str, Any], str | None]]
    field: str


def _targets() -> list[_Target]:
    return [
        _Target(
            "component",
            Component.id,
            Component.configuration,
            lambda: sa.select(
                col(Component.id), col(Component.configuration), col(Component.component_type)
            ),
            "configuration",
        ),
        _Target(
            "component_config",
            ComponentConfig.id,
            ComponentConfig.configuration,
            lambda: sa.select(
                col(ComponentConfig.id),
                col(ComponentConfig.configuration),
                col(Component.component_type),
            ).join(Component, col(Component.id) == ComponentConfig.component_id),
            "configuration",
        ),
        _Target(
            "run_request",
            RunRequest.id,
            RunRequest.run_config,
            lambda: sa.select(col(RunRequest.id), col(RunRequest.run_config), sa.null()),
            "run_config",
        ),
    ]


class SecretsAPI(StoreAPI):
    """Key rotation. Encryption and decryption themselves happen in the entity namespaces."""

    namespace = "secrets"

    @requires(Role.ADMIN)
    def rotate(
        self, *, batch_size: int = 500, progress: Callable[[str, int], None] | None = None
    ) -> RotationResult:
        """Re-encrypt every stored secret not yet under the newest key.

        Covers current component configurations, every configuration version, and run request
        run configs; secrets still stored in clear are encrypted too, and so are the secret parts
        of URL secrets (a URL an earlier version encrypted whole is split: only its password and
        sensitive query values stay encrypted). Rows are read in id order,
        ``batch_size`` at a time, each batch in its own transaction with one audit event (counts
        and ids, never values). Interrupted, it can simply run again: secrets already under the
        newest key are left alone, so a second run changes nothing. Afterwards the older keys
        can be removed from ``ETL_META_SECRET_KEYS``.
        """
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValidationError.single("batch_size", f"must be between 1 and {MAX_BATCH_SIZE}")
        if not self._store.cipher.configured:
            raise SecretKeyMissingError.single(
                "secret_keys", "no encryption key is configured: nothing to rotate to"
            )
        result = RotationResult()
        for target in _targets():
            result.rows[target.name] = 0
            after_id = 0
            while True:
                changed, last_id = self._rotate_batch(target, after_id, batch_size)
                if last_id is None:
                    break
                after_id = last_id
                if changed:
                    result.rows[target.name] += changed
                    result.batches += 1
                    if progress is not None:
                        progress(target.name, changed)
        return result

    def _rotate_batch(self, target: _Target, after_id: int, size: int) -> tuple[int, int | None]:
        cipher = self._store.cipher
        with self._tx() as session:
            rows = session.execute(
                target.query()
                .where(target.id_column > after_id)
                .order_by(target.id_column)
                .limit(size)
                .with_for_update()
            ).all()
            if not rows:
                return 0, None
            changed_ids = []
            for row_id, document, component_type in rows:
                if document is None:
                    continue
                new_document, changed = cipher.reencrypt_document(
                    document, component_type=component_type, field=target.field
                )
                if changed:
                    session.execute(
                        sa.update(target.json_column.class_)
                        .where(target.id_column == row_id)
                        .values({target.json_column.key: new_document})
                    )
                    changed_ids.append(row_id)
            if changed_ids:
                record_change(
                    self._store,
                    session,
                    action="rotate_secrets",
                    entity_type="secrets",
                    entity_key=target.name,
                    entity_id=None,
                    after={
                        "table": target.name,
                        "rows": len(changed_ids),
                        "first_id": changed_ids[0],
                        "last_id": changed_ids[-1],
                    },
                )
            return len(changed_ids), rows[-1][0]
