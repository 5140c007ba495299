"""Data migration: encrypt the secret configuration values earlier versions stored in clear.

Covers ``component.configuration``, every ``component_config.configuration`` version and
``run_request.run_config``; a value is secret by the masking rule (sensitive key names and keys
declared by component types, at any depth). The keys come from the settings passed to
``schema.upgrade`` (``etl-meta db upgrade`` passes the environment's: ``ETL_META_SECRET_KEYS`` or
the key file). With plaintext secrets and no key the upgrade stops, changing nothing, and says
how to configure one; with no plaintext secrets it needs no key at all. Idempotent: values
already encrypted are left alone.

The downgrade decrypts every secret back to plaintext (revision 0004 reads values as they are),
which needs the key that encrypted them; without one it refuses, changing nothing, rather than
leave ciphertext an older etl-meta would hand to running code as the password itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500


def _tables() -> list[tuple[str, Any, sa.Select[Any]]]:
    from etl_meta.types import JSONDocument

    component = sa.table(
        "component",
        sa.column("id", sa.Integer),
        sa.column("component_type", sa.String),
        sa.column("configuration", JSONDocument),
    )
    component_config = sa.table(
        "component_config",
        sa.column("id", sa.Integer),
        sa.column("component_id", sa.Integer),
        sa.column("configuration", JSONDocument),
    )
    run_request = sa.table(
        "run_request", sa.column("id", sa.Integer), sa.column("run_config", JSONDocument)
    )
    return [
        (
            "configuration",
            component,
            sa.select(component.c.id, component.c.configuration, component.c.component_type),
        ),
        (
            "configuration",
            component_config,
            sa.select(
                component_config.c.id, component_config.c.configuration, component.c.component_type
            ).join(component, component.c.id == component_config.c.component_id),
        ),
        (
            "run_config",
            run_request,
            sa.select(run_request.c.id, run_request.c.run_config, sa.null()),
        ),
    ]


def _rows(column: str, table: Any, query: sa.Select[Any]) -> Iterator[tuple[int, Any, Any]]:
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(query.where(table.c.id > after).order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def _cipher():
    from etl_meta.components.registry import known_component_types
    from etl_meta.schema import migration_settings
    from etl_meta.secrets import Cipher

    known_component_types()  # component types declare their secret keys when they register
    return Cipher.from_settings(migration_settings(context.config))


def _rewrite(transform) -> None:
    bind = op.get_bind()
    for column, table, query in _tables():
        for row_id, document, component_type in list(_rows(column, table, query)):
            if document is None:
                continue
            new_document = transform(document, component_type, f"{table.name}.{row_id}.{column}")
            if new_document is not None:
                bind.execute(
                    sa.update(table).where(table.c.id == row_id).values({column: new_document})
                )


def upgrade() -> None:
    from etl_meta.secrets import SecretsError, has_plaintext_secrets

    cipher = _cipher()
    if not cipher.configured:
        for column, table, query in _tables():
            for row_id, document, component_type in _rows(column, table, query):
                if has_plaintext_secrets(document, component_type=component_type):
                    raise SecretsError(
                        f"{table.name} {row_id} stores a secret {column} value in clear and no "
                        "encryption key is configured: set ETL_META_SECRET_KEYS (or run "
                        "`etl-meta secrets init` / `etl-meta secrets generate-key`), then run "
                        "`etl-meta db upgrade` again"
                    )
        return

    def encrypt(document: Any, component_type: Any, field: str) -> Any:
        if not has_plaintext_secrets(document, component_type=component_type):
            return None
        new_document, _changed = cipher.reencrypt_document(
            document, component_type=component_type, field=field
        )
        return new_document

    _rewrite(encrypt)


def downgrade() -> None:
    cipher = _cipher()

    def decrypt(document: Any, component_type: Any, field: str) -> Any:
        plain = cipher.decrypt_document(document, component_type=component_type, field=field)
        return plain if plain != document else None

    # Raises SecretDecryptError naming the field (no key / no matching key): nothing committed.
    _rewrite(decrypt)
