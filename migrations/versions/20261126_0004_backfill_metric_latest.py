"""Data migration: fill metric_latest from the points recorded before it existed.

For each (execution, component, name), the point with the highest (attempt, step). Idempotent
(``ON CONFLICT DO NOTHING``), so it is safe on a store that already wrote some rows.

The downgrade keeps the rows on purpose: revision 0003 has the same table with the same meaning,
and the rows cannot be told apart from those the store maintained on write since — deleting
them would throw away valid data in a table that survives the downgrade. Moving the revision
back is all there is to undo.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Both dialects understand this: window functions (SQLite ≥ 3.25) and ON CONFLICT (≥ 3.24).
BACKFILL = """
INSERT INTO metric_latest (execution_id, component_id, name, attempt, step, value, recorded_at)
SELECT execution_id, component_id, name, attempt, step, value, recorded_at
FROM (
    SELECT execution_id, component_id, name, attempt, step, value, recorded_at,
           ROW_NUMBER() OVER (
               PARTITION BY execution_id, component_id, name
               ORDER BY attempt DESC, step DESC
           ) AS position
    FROM metric
) AS ranked
WHERE position = 1
ON CONFLICT (execution_id, component_id, name) DO NOTHING
"""


def upgrade() -> None:
    op.execute(BACKFILL)


def downgrade() -> None:
    # Nothing to undo: see the module docstring. Upgrading again re-runs the idempotent backfill.
    return None
