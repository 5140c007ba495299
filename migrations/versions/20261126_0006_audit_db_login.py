"""audit_event.db_login: the database login that wrote each event, set by PostgreSQL itself.

The ``actor`` column is what the writing process says it is (``dagster:<run id>``, ``alice@host``);
any role allowed to insert audit events could claim any actor. On PostgreSQL a ``BEFORE INSERT``
trigger now overwrites ``db_login`` with ``session_user`` — the role the connection logged in as,
which ``SET ROLE`` does not change — so an event also says, unforgeably, which database login
wrote it. Only the schema owner can disable the trigger, and the etl-meta roles cannot update or
delete audit events (``etl-meta db roles``). SQLite has no logins: the column stays NULL there.

Existing events keep NULL: who wrote them was never recorded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = "etl_meta_audit_db_login"
_TRIGGER = "trg_audit_event_db_login"


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("db_login", sa.String(length=63), nullable=True))
    if op.get_context().dialect.name != "postgresql":
        return
    # SECURITY INVOKER (the default): the function needs no privilege beyond the insert itself.
    op.execute(
        f"""
        CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.db_login := session_user;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {_TRIGGER} BEFORE INSERT ON audit_event "
        f"FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON audit_event")
        op.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("db_login")
