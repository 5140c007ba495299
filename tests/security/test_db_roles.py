"""``etl-meta db roles``: the writer records runs and changes no definition; the admin changes
definitions but only appends to the audit trail; the database itself enforces both.

Every PostgreSQL test connects *as* the role under test (``etl_meta_writer``, ``etl_meta_admin``)
through a real :class:`MetadataStore` or plain SQL, in a scratch database migrated and seeded as
the schema owner. They take the ``pg_server`` fixture, which skips **only** when
``ETL_META_TEST_POSTGRES_URL`` is unset; CI always sets it. See ``tests/role_databases.py`` for
how the cluster-wide roles are shared between tests.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta import schema as schema_mod
from etl_meta.cli import app
from etl_meta.config import get_settings
from etl_meta.errors import PermissionDeniedError
from etl_meta.models import metadata
from etl_meta.repository.metric_points import COPY_ABOVE
from etl_meta.roles import ADMIN_ROLE, READER_ROLE, READER_VIEWS, WRITER_ROLE, ensure_roles
from etl_meta.roles_grants import definition_tables
from etl_meta.types import utcnow
from tests.backends import TEST_SECRET_KEY, isolated_settings
from tests.factories import T0
from tests.role_databases import (
    denied,
    fingerprint,
    held_privileges,
    migrate_and_seed,
    url_as,
)

ROLES = (READER_ROLE, WRITER_ROLE, ADMIN_ROLE)
PASSWORDS = {"reader": "r-pw-71ab'q", "writer": "w-pw-93c0'q", "admin": "a-pw-5d2e'q"}
SECRET = "warehouse-pw-0f3c"
#: A second key to rotate to (test-only, like TEST_SECRET_KEY): rotation then has work to do.
NEW_KEY = "bmV3LXRlc3Qta2V5LW5vdC1hLXJlYWwtc2VjcmV0LTA="
VERSION = schema_mod.VERSION_TABLE
TABLES = (*sorted(metadata.tables), VERSION)
#: The writer's share, spelled out here rather than read from etl_meta.roles_grants.
RECORDED = (
    "component_execution",
    "execution",
    "execution_tag",
    "metric_latest",
    "metric_name",
    "metric_point",
    "metric_series",
    "run_request",
    "sync_cursor",
)
SIU, SIUD = {"SELECT", "INSERT", "UPDATE"}, {"SELECT", "INSERT", "UPDATE", "DELETE"}
EXPECTED = {
    READER_ROLE: {view: {"SELECT"} for view in READER_VIEWS},
    WRITER_ROLE: {
        **{view: {"SELECT"} for view in READER_VIEWS},
        **{table: {"SELECT"} for table in TABLES},
        **{table: SIU for table in RECORDED},
        "audit_event": {"SELECT", "INSERT"},
    },
    ADMIN_ROLE: {
        **{view: {"SELECT"} for view in READER_VIEWS},
        **{table: SIUD for table in metadata.tables},
        "audit_event": {"SELECT", "INSERT"},
        VERSION: {"SELECT"},
    },
}


@pytest.fixture
def migrated_url(pg_scratch_url: str, tmp_path: Path) -> str:
    """A migrated scratch database with rows in every table and a secret in a component."""
    return migrate_and_seed(pg_scratch_url, tmp_path, secret=SECRET)


@pytest.fixture
def roles_url(migrated_url: str) -> str:
    """The seeded database with the three roles set up, each with LOGIN and a password."""
    engine = sa.create_engine(migrated_url)
    try:
        applied = ensure_roles(engine, passwords=PASSWORDS)
    finally:
        engine.dispose()
    assert not [line for lines in applied.values() for line in lines if "warning" in line]
    return migrated_url


@pytest.fixture
def settings_env() -> Iterator[None]:
    """CLI commands read the (cached) environment settings: start and end with a fresh read."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _store(url: str, user: str, role: str, tmp_path: Path, **settings: object) -> MetadataStore:
    """A store connected as database role ``user`` and checking store role ``role``."""
    password = PASSWORDS[user.removeprefix("etl_meta_")]
    return MetadataStore(
        url_as(url, user, password), settings=isolated_settings(tmp_path, **settings), role=role
    )


def _roles(url: str, *extra: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["db", "roles", *extra, "--database-url", url], env=env)


def _statements(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("  ")]


# -- the command -------------------------------------------------------------------------------


def test_roles_twice_grants_the_same_and_never_prints_a_password(migrated_url):
    env = {f"PW_{role.upper()}": password for role, password in PASSWORDS.items()}
    options = [f"--{role}-password-env=PW_{role.upper()}" for role in PASSWORDS]
    first = _roles(migrated_url, *options, env=env)
    assert first.exit_code == 0, first.output
    held = held_privileges(migrated_url)
    second = _roles(migrated_url, *options, env=env)
    assert second.exit_code == 0, second.output
    assert held_privileges(migrated_url) == held

    without_role_lines = [
        [s for s in _statements(r.output) if "-- role" not in s and "CREATE ROLE" not in s]
        for r in (first, second)
    ]
    assert without_role_lines[0] == without_role_lines[1]
    for name in ROLES:
        assert f"role {name} exists (LOGIN)" in second.output
        assert f"ALTER ROLE {name} LOGIN PASSWORD '********'" in second.output
        assert f"ok: {name} may " in second.output
    for output in (first.output, second.output):
        assert "SCRAM" not in output
        assert not [p for p in PASSWORDS.values() if p in output]
    assert "GRANT SELECT, INSERT ON audit_event TO etl_meta_writer" in second.output
    assert "GRANT CONNECT, TEMPORARY ON DATABASE" in second.output


def test_each_role_holds_exactly_its_share(roles_url):
    held = held_privileges(roles_url)
    for role, objects in EXPECTED.items():
        tables = {(obj, p) for r, obj, p in held if r == role and obj not in ("schema", "database")}
        relations = {(obj, p) for obj, p in tables if not obj.endswith("_seq")}
        assert relations == {(obj, p) for obj, privs in objects.items() for p in privs}, role
        assert ("schema", "CREATE") not in {(obj, p) for r, obj, p in held if r == role}
        assert (role, "database", "CREATE") not in held
        assert (role, "schema", "USAGE") in held and (role, "database", "CONNECT") in held
        sequences = {(obj, p) for obj, p in tables if obj.endswith("_seq")}
        assert not [p for _obj, p in sequences if p != "USAGE"], (role, "setval")
    writer_sequences = {obj for r, obj, _p in held if r == WRITER_ROLE and obj.endswith("_seq")}
    assert writer_sequences == {f"{t}_id_seq" for t in (*RECORDED, "audit_event")} - {
        "metric_latest_id_seq",
        "sync_cursor_id_seq",  # keyed by name: no sequence
        "execution_tag_id_seq",  # keyed by run and key: no sequence
    }
    assert (WRITER_ROLE, "database", "TEMPORARY") in held
    assert (ADMIN_ROLE, "database", "TEMPORARY") in held
    assert {"job", "job_tag", "tag", "component", "component_config", "component_dependency"} | {
        "component_dataclass",
        "dataclass",
        # Retention: policies are definitions; rollups are written by the pass, which is admin's.
        "retention_policy",
        "metric_rollup",
    } == set(definition_tables())


def test_roles_set_up_before_run_tags_get_their_share_when_the_schema_is_upgraded(
    pg_scratch_url, tmp_path
):
    """Migration 0009 grants its table and view to roles ``db roles`` set up at 0008, as
    ``db roles`` itself would: nobody has to run it again after an upgrade."""
    engine = sa.create_engine(pg_scratch_url)
    settings = isolated_settings(tmp_path)
    try:
        schema_mod.upgrade(engine, settings=settings)
        ensure_roles(engine, passwords=PASSWORDS)
        schema_mod.downgrade(engine, "0008", settings=settings)  # the roles as 0008 left them
        schema_mod.upgrade(engine, settings=settings)
    finally:
        engine.dispose()
    held = held_privileges(pg_scratch_url)
    for role, objects in EXPECTED.items():
        for relation in ("execution_tag", "v_run_tag"):
            granted = {p for r, obj, p in held if r == role and obj == relation}
            assert granted == objects.get(relation, set()), (role, relation)


def test_roles_set_up_before_retention_get_their_share_when_the_schema_is_upgraded(
    pg_scratch_url, tmp_path
):
    """Migration 0012 grants its tables to roles ``db roles`` set up at 0011, as ``db roles``
    would: the writer reads them, the admin changes them (and uses the policy id sequence)."""
    engine = sa.create_engine(pg_scratch_url)
    settings = isolated_settings(tmp_path)
    try:
        schema_mod.upgrade(engine, settings=settings)
        ensure_roles(engine, passwords=PASSWORDS)
        schema_mod.downgrade(engine, "0011", settings=settings)  # the roles as 0011 left them
        schema_mod.upgrade(engine, settings=settings)
    finally:
        engine.dispose()
    held = held_privileges(pg_scratch_url)
    for role, objects in EXPECTED.items():
        for relation in ("retention_policy", "metric_rollup"):
            granted = {p for r, obj, p in held if r == role and obj == relation}
            assert granted == objects.get(relation, set()), (role, relation)
    assert (ADMIN_ROLE, "retention_policy_id_seq", "USAGE") in held


def test_role_filter_sets_up_only_the_roles_named(migrated_url):
    result = _roles(migrated_url, "--role", "writer")
    assert result.exit_code == 0, result.output
    assert f"ok: {WRITER_ROLE}" in result.output
    assert READER_ROLE not in result.output and ADMIN_ROLE not in result.output
    held = held_privileges(migrated_url)
    assert (WRITER_ROLE, "execution", "INSERT") in held
    # (Migration 0002 gives an existing reader the views back, so only tables are compared.)
    assert not [h for h in held if h[0] != WRITER_ROLE and h[1] in TABLES]

    result = _roles(migrated_url, "--role", "reader", "--role", "admin")
    assert result.exit_code == 0, result.output
    assert f"ok: {READER_ROLE}" in result.output and f"ok: {ADMIN_ROLE}" in result.output
    assert (ADMIN_ROLE, "job", "DELETE") in held_privileges(migrated_url)


def test_roles_refuses_a_password_variable_unset_or_for_a_role_left_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"  # checked before connecting, on any backend
    unset = _roles(url, "--admin-password-env", "ETL_META_TEST_UNSET_VARIABLE_Y")
    assert unset.exit_code == 1
    assert "ETL_META_TEST_UNSET_VARIABLE_Y is not set" in unset.output
    left_out = _roles(url, "--role", "reader", "--writer-password-env", "PW", env={"PW": "x"})
    assert left_out.exit_code == 1
    assert "--writer-password-env is given but --role leaves out writer" in left_out.output


def test_roles_exits_2_naming_privileges_held_through_public(roles_url):
    owner = sa.create_engine(roles_url, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as connection:
            connection.exec_driver_sql("GRANT DELETE ON execution TO PUBLIC")
        result = _roles(roles_url)
        with owner.connect() as connection:
            connection.exec_driver_sql("REVOKE DELETE ON execution FROM PUBLIC")
    finally:
        owner.dispose()
    assert result.exit_code == 2, result.output
    assert f"warning: {WRITER_ROLE} still has DELETE on table execution" in result.output
    assert f"warning: {READER_ROLE} still has DELETE on table execution" in result.output
    # The admin may delete runs anyway (gc): no warning, and its ok line.
    assert f"warning: {ADMIN_ROLE}" not in result.output
    assert f"ok: {ADMIN_ROLE}" in result.output and f"ok: {WRITER_ROLE}" not in result.output


def test_roles_on_sqlite_explains_roles_need_postgresql_and_the_store_checks_a_role(tmp_path):
    result = _roles(f"sqlite:///{tmp_path / 'store.db'}", "--role", "writer")
    assert result.exit_code == 0, result.output
    assert "SQLite has no database roles" in result.output
    assert "ETL_META_ROLE" in result.output


# -- the writer --------------------------------------------------------------------------------


def test_the_writer_reads_definitions_and_records_a_run_end_to_end(roles_url, tmp_path):
    points = [("extract", "rows", float(step), step, 1, T0) for step in range(2_000)]
    with _store(roles_url, WRITER_ROLE, "writer", tmp_path) as store:  # opening checks the schema
        assert schema_mod.schema_drift(store.engine) == []
        seeded_up_to = store.audit.list(limit=1)[0].id
        assert [job.name for job in store.jobs.list()] == ["daily_sales"]
        assert {c.name for c in store.components.list("daily_sales")} == {"extract", "load"}
        assert store.components.configuration("daily_sales", "load")["password"] == SECRET
        run = {"job": "daily_sales", "orchestrator": "dagster", "external_run_id": "run-w"}
        store.executions.upsert(
            {**run, "status": "running", "started_at": T0},
            steps=[{"component": "extract", "attempt": 1, "status": "running"}],
        )
        store.executions.record_attempt(
            "dagster", "run-w", {"component": "extract", "attempt": 1, "status": "success"}
        )
        recorded = store.metrics.record(points, orchestrator="dagster", run_id="run-w")
        replayed = store.metrics.record(points[:10], orchestrator="dagster", run_id="run-w")
        finished = store.executions.upsert(
            {**run, "status": "success", "ended_at": T0 + timedelta(seconds=5)}
        )
        request = store.run_requests.create(
            {"job": "daily_sales", "request_key": "w-1", "run_config": {"day": "2026-01-02"}}
        )
        store.run_requests.mark_launched(
            request.id, orchestrator="dagster", external_run_id="run-w"
        )
        done = store.run_requests.mark_finished(request.id, "success")
        events = [e for e in store.audit.list(limit=100) if e.id > seeded_up_to]
    assert (recorded.inserted, replayed.skipped) == (2_000, 10)
    assert finished.status == "success" and done.status == "success"
    # The database, not the client, says which login wrote each event (migration 0006).
    assert {e.db_login for e in events} == {WRITER_ROLE}
    actions = {(e.entity_type, e.action) for e in events}
    assert ("component", "decrypt") in actions
    # Metric points are not audited (etl_meta.store.metrics): their run's record is.
    assert not any(action == "record_metrics" for _, action in actions)
    assert {("execution", "create"), ("execution", "update")} <= actions
    assert ("component_execution", "update") in actions
    assert {("run_request", "create"), ("run_request", "update")} <= actions
    check = CliRunner().invoke(
        app, ["db", "check", "--database-url", url_as(roles_url, WRITER_ROLE, "x")]
    )
    assert check.exit_code == 0, check.output


def test_replayed_bulk_metric_batches_need_the_temporary_grant(roles_url, tmp_path):
    owner = sa.create_engine(roles_url, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as connection:  # PUBLIC has TEMPORARY by default: take it away
            connection.exec_driver_sql(
                f"REVOKE TEMPORARY ON DATABASE {owner.url.database} FROM PUBLIC, {WRITER_ROLE}"
            )
        with _store(roles_url, WRITER_ROLE, "writer", tmp_path) as store:
            # An op's few points go in one statement, no staging table: no TEMPORARY needed.
            small = store.metrics.record(
                [("load", "few", 1.0)], orchestrator="dagster", run_id="run-1"
            )
            assert small.inserted == 1
            # A first bulk batch is COPY'd straight into the table: no TEMPORARY either.
            bulk = [("load", "bulk", 1.0, step) for step in range(COPY_ABOVE + 1)]
            first = store.metrics.record(bulk, orchestrator="dagster", run_id="run-1")
            assert first.inserted == COPY_ABOVE + 1
            # Replaying it goes through the staging table, which needs TEMPORARY.
            with pytest.raises(PermissionDeniedError) as refused:
                store.metrics.record(bulk, orchestrator="dagster", run_id="run-1")
            assert refused.value.source == "database"
            assert _roles(roles_url, "--role", "writer").exit_code == 0
            replay = store.metrics.record(bulk, orchestrator="dagster", run_id="run-1")
            assert (replay.inserted, replay.skipped) == (0, COPY_ABOVE + 1)
    finally:
        owner.dispose()


def test_large_reads_run_as_the_stores_login_and_are_refused_as_typed_errors(roles_url, tmp_path):
    """A whole metric frame is read through ADBC on a connection of its own: with the store's
    login and password, and the database's refusal is the same typed error as elsewhere."""
    from etl_meta.analytics import metrics_frame
    from etl_meta.analytics._arrow import arrow_stream
    from etl_meta.analytics._connections import read_connection

    owner = sa.create_engine(roles_url, isolation_level="AUTOCOMMIT")
    try:
        with _store(roles_url, WRITER_ROLE, "writer", tmp_path) as store:
            assert not metrics_frame(store, attempts="all").empty
            login = "SELECT current_user"
            with (
                read_connection(store) as read,
                arrow_stream(read, login, None, {"login": "text"}) as tables,
            ):
                logins = [row["login"] for table in tables for row in table.to_pylist()]
            with owner.connect() as connection:
                connection.exec_driver_sql(f"REVOKE SELECT ON metric_point FROM {WRITER_ROLE}")
            assert logins == [WRITER_ROLE]
            with pytest.raises(PermissionDeniedError) as refused:
                metrics_frame(store, attempts="all")
        assert refused.value.source == "database"
        assert refused.value.__cause__.sqlstate == "42501"  # the sanitized driver error
        shown = "".join(traceback.format_exception(refused.value))
        assert "permission denied for table metric_point" in shown
        assert PASSWORDS["writer"] not in shown
    finally:
        owner.dispose()


def test_a_run_read_refused_is_typed_and_leaves_the_connection_usable(roles_url, tmp_path):
    """One run's points are read on a connection of the store's pool: a refusal on the names'
    table is the same typed error, and the pooled connection serves the next read."""
    from etl_meta.analytics import metrics_frame

    owner = sa.create_engine(roles_url, isolation_level="AUTOCOMMIT")
    try:
        with _store(roles_url, WRITER_ROLE, "writer", tmp_path) as store:
            run_id = int(metrics_frame(store, attempts="all")["run_id"].iloc[0])
            before = metrics_frame(store, run=run_id, attempts="all")
            assert not before.empty
            with owner.connect() as connection:
                connection.exec_driver_sql(f"REVOKE SELECT ON component FROM {WRITER_ROLE}")
            try:
                with pytest.raises(PermissionDeniedError) as refused:
                    metrics_frame(store, run=run_id, attempts="all")
            finally:
                with owner.connect() as connection:
                    connection.exec_driver_sql(f"GRANT SELECT ON component TO {WRITER_ROLE}")
            pd.testing.assert_frame_equal(metrics_frame(store, run=run_id, attempts="all"), before)
        assert refused.value.source == "database"
        assert refused.value.__cause__.sqlstate == "42501"
        shown = "".join(traceback.format_exception(refused.value))
        assert "permission denied for table component" in shown
        assert PASSWORDS["writer"] not in shown
    finally:
        owner.dispose()


def _change_definitions(store: MetadataStore) -> list[tuple[str, object]]:
    """Every kind of definition change, each as a thunk to try."""
    return [
        ("jobs.create", lambda: store.jobs.create({"name": "sneaky", "num_of_retries": 0})),
        ("jobs.update", lambda: store.jobs.update("daily_sales", {"num_of_retries": 9})),
        ("jobs.archive", lambda: store.jobs.archive("daily_sales")),
        (
            "components.update",
            lambda: store.components.update(
                "daily_sales", "load", {"configuration": {"table": "elsewhere"}}
            ),
        ),
        (
            "components.set_dependencies",
            lambda: store.components.set_dependencies("daily_sales", "load", []),
        ),
        (
            "dataclasses.create",
            lambda: store.dataclasses.create(
                {"name": "sneaky", "schema_definition": {"columns": {"id": "int64"}}}
            ),
        ),
        ("maintenance.gc", lambda: store.maintenance.gc(older_than=utcnow() - timedelta(days=1))),
        ("secrets.rotate", lambda: store.secrets.rotate()),
    ]


@pytest.mark.parametrize("store_role,source", [("writer", "store"), ("admin", "database")])
def test_the_writer_changes_no_definition_whatever_role_the_store_claims(
    roles_url, tmp_path, store_role, source
):
    before = fingerprint(roles_url)
    with _store(
        roles_url, WRITER_ROLE, store_role, tmp_path, secret_keys=f"{NEW_KEY},{TEST_SECRET_KEY}"
    ) as store:
        for operation, attempt in _change_definitions(store):
            with pytest.raises(PermissionDeniedError) as refused:
                attempt()
            assert refused.value.source == source, operation
            assert fingerprint(roles_url) == before, f"{operation} wrote something"


def test_the_writer_cannot_delete_rewrite_the_audit_trail_or_create_tables(roles_url):
    for table in RECORDED:
        assert denied(roles_url, WRITER_ROLE, f"DELETE FROM {table}"), table
    for table in TABLES:
        assert denied(roles_url, WRITER_ROLE, f"TRUNCATE {table}"), table
    for table in definition_tables():
        assert denied(roles_url, WRITER_ROLE, f"DELETE FROM {table}"), table
        assert denied(roles_url, WRITER_ROLE, f"INSERT INTO {table} DEFAULT VALUES"), table
        column = next(iter(metadata.tables[table].columns)).name
        assert denied(roles_url, WRITER_ROLE, f"UPDATE {table} SET {column} = {column}"), table
    assert denied(roles_url, WRITER_ROLE, "UPDATE audit_event SET actor = 'someone else'")
    assert denied(roles_url, WRITER_ROLE, "DELETE FROM audit_event")
    assert denied(roles_url, WRITER_ROLE, f"UPDATE {VERSION} SET version_num = 'x'")
    assert denied(roles_url, WRITER_ROLE, "SELECT setval('execution_id_seq', 1)")
    assert denied(roles_url, WRITER_ROLE, "CREATE TABLE writer_was_here (id integer)")
    assert denied(roles_url, WRITER_ROLE, "CREATE SCHEMA writer_was_here")
    assert denied(roles_url, WRITER_ROLE, "UPDATE v_job SET job = job")


def test_the_writer_reads_nothing_outside_etl_meta_even_if_granted_by_hand(roles_url):
    owner = sa.create_engine(roles_url, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE payroll (salary integer)")
            connection.exec_driver_sql(f"GRANT SELECT ON payroll TO {WRITER_ROLE}")
            connection.exec_driver_sql(f"GRANT DELETE ON job TO {WRITER_ROLE}")
        assert not denied(roles_url, WRITER_ROLE, "SELECT * FROM payroll")
        assert _roles(roles_url, "--role", "writer").exit_code == 0
    finally:
        owner.dispose()
    assert denied(roles_url, WRITER_ROLE, "SELECT * FROM payroll")
    assert denied(roles_url, WRITER_ROLE, "DELETE FROM job")
    assert not denied(roles_url, WRITER_ROLE, "SELECT count(*) FROM component_config")


# -- the admin ---------------------------------------------------------------------------------


def test_the_admin_applies_definitions_rotates_keys_and_collects_old_runs(
    roles_url, tmp_path, monkeypatch, settings_env
):
    admin_url = url_as(roles_url, ADMIN_ROLE, PASSWORDS["admin"])
    examples = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"
    runner = CliRunner()
    monkeypatch.setenv("ETL_META_ROLE", "admin")
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path))

    applied = runner.invoke(app, ["apply", "-f", str(examples), "--database-url", admin_url])
    assert applied.exit_code == 0, applied.output
    monkeypatch.setenv("ETL_META_SECRET_KEYS", f"{NEW_KEY},{TEST_SECRET_KEY}")
    get_settings.cache_clear()
    rotated = runner.invoke(app, ["secrets", "rotate", "--database-url", admin_url])
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted" in rotated.output
    collected = runner.invoke(app, ["gc", "--older-than", "1d", "--database-url", admin_url])
    assert collected.exit_code == 0, collected.output

    with _store(roles_url, ADMIN_ROLE, "admin", tmp_path, secret_keys=NEW_KEY) as store:
        assert store.components.configuration("daily_sales", "load")["password"] == SECRET
        assert store.executions.find("dagster", "run-1") is None  # gc deleted the seeded run
        jobs = {job.name for job in store.jobs.list()}
        actions = {e.action for e in store.audit.list(limit=500) if e.actor != "tester@test"}
    assert {"daily_sales", "inventory_snapshot", "customer_quality_report"} <= jobs
    assert {"create", "rotate_secrets", "gc"} <= actions


def test_the_admin_cannot_rewrite_the_audit_trail_or_change_the_schema(roles_url):
    assert denied(roles_url, ADMIN_ROLE, "UPDATE audit_event SET actor = 'someone else'")
    assert denied(roles_url, ADMIN_ROLE, "DELETE FROM audit_event")
    for table in TABLES:
        assert denied(roles_url, ADMIN_ROLE, f"TRUNCATE {table}"), table
    assert denied(roles_url, ADMIN_ROLE, "DROP TABLE job")  # "must be owner": also 42501
    assert denied(roles_url, ADMIN_ROLE, "ALTER TABLE job ADD COLUMN sneaky integer")
    assert denied(roles_url, ADMIN_ROLE, "CREATE TABLE admin_was_here (id integer)")
    assert denied(roles_url, ADMIN_ROLE, f"DELETE FROM {VERSION}")
    assert not denied(roles_url, ADMIN_ROLE, "DELETE FROM metric_point")


def test_the_database_names_the_login_of_every_audit_event_whatever_the_client_claims(
    roles_url, tmp_path
):
    forged = (
        "INSERT INTO audit_event (occurred_at, actor, db_login, action, entity_type, entity_key)"
        " VALUES (now(), 'alice@laptop', 'etl_meta_admin', 'update', 'job', 'daily_sales')"
    )
    engine = sa.create_engine(url_as(roles_url, WRITER_ROLE, PASSWORDS["writer"]))
    try:
        with engine.begin() as connection:
            event_id = connection.exec_driver_sql(forged + " RETURNING id").scalar_one()
    finally:
        engine.dispose()
    with _store(roles_url, ADMIN_ROLE, "admin", tmp_path) as store:
        (event,) = [e for e in store.audit.list(limit=50) if e.id == event_id]
        # The actor is whatever the writer said; the login is the one it really used.
        assert (event.actor, event.db_login) == ("alice@laptop", WRITER_ROLE)
        store.jobs.update("daily_sales", {"num_of_retries": 4})
        assert store.audit.list(limit=1)[0].db_login == ADMIN_ROLE
