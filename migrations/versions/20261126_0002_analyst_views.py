"""Analyst views: read-only ``v_*`` views over runs, step attempts, metrics and jobs for BI tools.

The view names and their columns are a public contract (see ``docs/sql-views.md``): change them
only in a new revision, never by editing this one. No view exposes configuration
(``component.configuration``, ``component_config``), ``run_config``, ``run_request`` or the audit
trail, so granting SELECT on the views alone (``etl-meta db roles``) never reveals a secret.

Each statement is spelled out for each dialect instead of being assembled from fragments, so a DBA
can read exactly what runs. The differences:

* ``duration_seconds``: ``EXTRACT(EPOCH FROM …)`` on PostgreSQL; ``julianday`` differences on
  SQLite, which parses timestamps to the millisecond, hence ``round(…, 3)``.
* timestamps: ``timestamptz`` on PostgreSQL; on SQLite the stored UTC text
  (``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts in time order.
* ``v_metric_daily.day``: a ``date`` on PostgreSQL, ``YYYY-MM-DD`` text on SQLite (both UTC).
* ``v_job.tags``: ``string_agg(… ORDER BY …)`` on PostgreSQL; ``group_concat`` over an ordered
  subquery on SQLite (SQLite does not promise that order, but follows it in practice).
* booleans: ``boolean`` on PostgreSQL, ``0``/``1`` on SQLite.

Later revisions may batch-alter the tables these views read on SQLite (batch mode rebuilds a
table): ``migrations/env.py`` runs every revision inside
:func:`etl_meta.migration_env.views_kept_through_batch`, which keeps the views working through the
rebuild and fails the migration if a view no longer reads.

On PostgreSQL, dropping a view drops its grants: when the reader role (``etl_meta_reader``) exists,
``upgrade`` grants it SELECT on the views it creates, so a downgrade and upgrade keep it working.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The role ``etl-meta db roles`` creates may exist from before a downgrade: give the views back.
GRANT_TO_EXISTING_READER = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'etl_meta_reader') THEN
        GRANT SELECT ON v_run, v_step_attempt, v_metric, v_metric_daily, v_job
            TO etl_meta_reader;
    END IF;
END
$$
"""

# --- v_run -------------------------------------------------------------------------------------

V_RUN_POSTGRESQL = """
CREATE VIEW v_run AS
SELECT
    e.id AS run_id,
    j.name AS job,
    e.orchestrator,
    e.external_run_id,
    e.status,
    e.started_at,
    e.ended_at,
    CASE WHEN e.started_at IS NOT NULL AND e.ended_at IS NOT NULL
        THEN GREATEST(CAST(EXTRACT(EPOCH FROM e.ended_at - e.started_at) AS double precision), 0)
    END AS duration_seconds,
    e.job_revision,
    e.error,
    e.parent_run_id,
    e.root_run_id,
    (SELECT count(*) FROM component_execution ce
        WHERE ce.execution_id = e.id) AS attempts,
    (SELECT count(*) FROM component_execution ce
        WHERE ce.execution_id = e.id AND ce.attempt > 1) AS retries,
    e.created_at
FROM execution e
JOIN job j ON j.id = e.job_id
"""

V_RUN_SQLITE = """
CREATE VIEW v_run AS
SELECT
    e.id AS run_id,
    j.name AS job,
    e.orchestrator,
    e.external_run_id,
    e.status,
    e.started_at,
    e.ended_at,
    CASE WHEN e.started_at IS NOT NULL AND e.ended_at IS NOT NULL
        THEN max(round((julianday(e.ended_at) - julianday(e.started_at)) * 86400.0, 3), 0.0)
    END AS duration_seconds,
    e.job_revision,
    e.error,
    e.parent_run_id,
    e.root_run_id,
    (SELECT count(*) FROM component_execution ce
        WHERE ce.execution_id = e.id) AS attempts,
    (SELECT count(*) FROM component_execution ce
        WHERE ce.execution_id = e.id AND ce.attempt > 1) AS retries,
    e.created_at
FROM execution e
JOIN job j ON j.id = e.job_id
"""

# --- v_step_attempt ----------------------------------------------------------------------------

V_STEP_ATTEMPT_POSTGRESQL = """
CREATE VIEW v_step_attempt AS
SELECT
    e.id AS run_id,
    j.name AS job,
    e.external_run_id,
    e.orchestrator,
    c.name AS component,
    c.component_type,
    ce.attempt,
    ce.attempt = (
        SELECT max(x.attempt) FROM component_execution x
        WHERE x.execution_id = ce.execution_id AND x.component_id = ce.component_id
    ) AS is_final_attempt,
    ce.status,
    ce.started_at,
    ce.ended_at,
    CASE WHEN ce.started_at IS NOT NULL AND ce.ended_at IS NOT NULL
        THEN GREATEST(CAST(EXTRACT(EPOCH FROM ce.ended_at - ce.started_at) AS double precision), 0)
    END AS duration_seconds,
    ce.config_version,
    ce.error
FROM component_execution ce
JOIN execution e ON e.id = ce.execution_id
JOIN job j ON j.id = e.job_id
JOIN component c ON c.id = ce.component_id
"""

V_STEP_ATTEMPT_SQLITE = """
CREATE VIEW v_step_attempt AS
SELECT
    e.id AS run_id,
    j.name AS job,
    e.external_run_id,
    e.orchestrator,
    c.name AS component,
    c.component_type,
    ce.attempt,
    ce.attempt = (
        SELECT max(x.attempt) FROM component_execution x
        WHERE x.execution_id = ce.execution_id AND x.component_id = ce.component_id
    ) AS is_final_attempt,
    ce.status,
    ce.started_at,
    ce.ended_at,
    CASE WHEN ce.started_at IS NOT NULL AND ce.ended_at IS NOT NULL
        THEN max(round((julianday(ce.ended_at) - julianday(ce.started_at)) * 86400.0, 3), 0.0)
    END AS duration_seconds,
    ce.config_version,
    ce.error
FROM component_execution ce
JOIN execution e ON e.id = ce.execution_id
JOIN job j ON j.id = e.job_id
JOIN component c ON c.id = ce.component_id
"""

# --- v_metric (the same on both backends) ------------------------------------------------------

V_METRIC = """
CREATE VIEW v_metric AS
SELECT
    m.id AS metric_id,
    e.id AS run_id,
    j.name AS job,
    e.external_run_id,
    e.orchestrator,
    c.name AS component,
    m.name,
    m.attempt,
    m.attempt = (
        SELECT max(x.attempt) FROM metric x
        WHERE x.execution_id = m.execution_id AND x.component_id = m.component_id
    ) AS is_final_attempt,
    m.step,
    m.value,
    m.recorded_at
FROM metric m
JOIN execution e ON e.id = m.execution_id
JOIN job j ON j.id = e.job_id
JOIN component c ON c.id = m.component_id
"""

# --- v_metric_daily ----------------------------------------------------------------------------
# Final attempts only. "last" is the value recorded last that day (ties: the point stored last).

V_METRIC_DAILY_POSTGRESQL = """
CREATE VIEW v_metric_daily AS
SELECT
    p.day,
    j.name AS job,
    c.name AS component,
    p.name,
    count(*) AS points,
    avg(p.value) AS mean,
    min(p.value) AS "min",
    max(p.value) AS "max",
    max(CASE WHEN p.newest = 1 THEN p.value END) AS "last"
FROM (
    SELECT
        m.component_id,
        m.name,
        m.value,
        CAST(m.recorded_at AT TIME ZONE 'UTC' AS date) AS day,
        row_number() OVER (
            PARTITION BY m.component_id, m.name, CAST(m.recorded_at AT TIME ZONE 'UTC' AS date)
            ORDER BY m.recorded_at DESC, m.id DESC
        ) AS newest
    FROM metric m
    WHERE m.attempt = (
        SELECT max(x.attempt) FROM metric x
        WHERE x.execution_id = m.execution_id AND x.component_id = m.component_id
    )
) p
JOIN component c ON c.id = p.component_id
JOIN job j ON j.id = c.job_id
GROUP BY p.day, p.component_id, p.name, j.name, c.name
"""

V_METRIC_DAILY_SQLITE = """
CREATE VIEW v_metric_daily AS
SELECT
    p.day,
    j.name AS job,
    c.name AS component,
    p.name,
    count(*) AS points,
    avg(p.value) AS mean,
    min(p.value) AS "min",
    max(p.value) AS "max",
    max(CASE WHEN p.newest = 1 THEN p.value END) AS "last"
FROM (
    SELECT
        m.component_id,
        m.name,
        m.value,
        date(m.recorded_at) AS day,
        row_number() OVER (
            PARTITION BY m.component_id, m.name, date(m.recorded_at)
            ORDER BY m.recorded_at DESC, m.id DESC
        ) AS newest
    FROM metric m
    WHERE m.attempt = (
        SELECT max(x.attempt) FROM metric x
        WHERE x.execution_id = m.execution_id AND x.component_id = m.component_id
    )
) p
JOIN component c ON c.id = p.component_id
JOIN job j ON j.id = c.job_id
GROUP BY p.day, p.component_id, p.name, j.name, c.name
"""

# --- v_job -------------------------------------------------------------------------------------
# Tags ordered by key then value, byte-wise on both backends (COLLATE "C" on PostgreSQL).

V_JOB_POSTGRESQL = """
CREATE VIEW v_job AS
SELECT
    j.name AS job,
    j.num_of_retries,
    j.strategy_type,
    j.file_logging,
    j.revision,
    j.is_archived,
    COALESCE((
        SELECT string_agg(t.key || '=' || t.value, ', '
                          ORDER BY t.key COLLATE "C", t.value COLLATE "C")
        FROM job_tag jt
        JOIN tag t ON t.id = jt.tag_id
        WHERE jt.job_id = j.id
    ), '') AS tags,
    (SELECT count(*) FROM component c
        WHERE c.job_id = j.id AND c.status <> 'archived') AS components,
    j.created_at,
    j.updated_at
FROM job j
"""

V_JOB_SQLITE = """
CREATE VIEW v_job AS
SELECT
    j.name AS job,
    j.num_of_retries,
    j.strategy_type,
    j.file_logging,
    j.revision,
    j.is_archived,
    COALESCE((
        SELECT group_concat(kv, ', ')
        FROM (
            SELECT t.key || '=' || t.value AS kv
            FROM job_tag jt
            JOIN tag t ON t.id = jt.tag_id
            WHERE jt.job_id = j.id
            ORDER BY t.key, t.value
        )
    ), '') AS tags,
    (SELECT count(*) FROM component c
        WHERE c.job_id = j.id AND c.status <> 'archived') AS components,
    j.created_at,
    j.updated_at
FROM job j
"""

#: Creation order; downgrade drops in reverse. No view depends on another.
VIEWS: dict[str, dict[str, str]] = {
    "v_run": {"postgresql": V_RUN_POSTGRESQL, "sqlite": V_RUN_SQLITE},
    "v_step_attempt": {"postgresql": V_STEP_ATTEMPT_POSTGRESQL, "sqlite": V_STEP_ATTEMPT_SQLITE},
    "v_metric": {"postgresql": V_METRIC, "sqlite": V_METRIC},
    "v_metric_daily": {"postgresql": V_METRIC_DAILY_POSTGRESQL, "sqlite": V_METRIC_DAILY_SQLITE},
    "v_job": {"postgresql": V_JOB_POSTGRESQL, "sqlite": V_JOB_SQLITE},
}

#: ``COMMENT ON VIEW`` / ``COMMENT ON COLUMN`` texts (PostgreSQL; BI tools show them).
COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "v_run": (
        "etl-meta: one row per run (execution) of a job. No run configuration.",
        {
            "run_id": "etl-meta's id of the run (execution.id)",
            "external_run_id": "the orchestrator's own run id",
            "duration_seconds": "ended_at - started_at in seconds; NULL until the run ends",
            "job_revision": "revision of the job definition the run used",
            "attempts": "number of step attempts recorded for the run",
            "retries": "step attempts beyond the first of each step, summed",
        },
    ),
    "v_step_attempt": (
        "etl-meta: one row per attempt of one step (component) of a run.",
        {
            "run_id": "etl-meta's id of the run (execution.id)",
            "component_type": "the component's current type",
            "attempt": "1-based attempt number of this step in this run",
            "is_final_attempt": "true for the highest attempt of this step in this run",
            "duration_seconds": "ended_at - started_at in seconds; NULL until the attempt ends",
            "config_version": "version of the component's configuration the attempt used",
        },
    ),
    "v_metric": (
        "etl-meta: one row per metric point, with run, job and component names.",
        {
            "run_id": "etl-meta's id of the run (execution.id)",
            "attempt": "the step attempt that recorded the point",
            "is_final_attempt": "true when attempt is the highest recorded for this run+component",
            "step": "the point's position in its series (0 for a single value)",
        },
    ),
    "v_metric_daily": (
        "etl-meta: metric points per UTC day, job, component and name; final attempts only.",
        {
            "day": "UTC calendar day of recorded_at",
            "points": "number of points (final attempts only)",
            "mean": "average value",
            "last": "value of the point recorded last that day",
        },
    ),
    "v_job": (
        "etl-meta: job definitions without component configuration.",
        {
            "tags": "key=value pairs joined by ', ', ordered by key",
            "components": "number of components that are not archived",
            "revision": "bumped on every change to the job's definition",
        },
    ),
}


def _dialect() -> str:
    name = op.get_context().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"etl-meta's views support postgresql and sqlite, not {name}")
    return name


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    dialect = _dialect()
    for statements in VIEWS.values():
        op.execute(statements[dialect])
    if dialect != "postgresql":
        return
    for view, (comment, columns) in COMMENTS.items():
        op.execute(f"COMMENT ON VIEW {view} IS {_literal(comment)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {view}.{column} IS {_literal(text)}")
    op.execute(GRANT_TO_EXISTING_READER)


def downgrade() -> None:
    _dialect()
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW {view}")
