"""The store's own permission checks, audit actors and the auditing of secret reads.

These run on both backends: SQLite has no database roles, so the store's check is all there is
there; on PostgreSQL the database roles enforce the same split (tests/security/test_db_roles.py).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta.access import Role, required_role
from etl_meta.config import Settings
from etl_meta.errors import PermissionDeniedError, ValidationError
from etl_meta.masking import MASK
from etl_meta.store._base import StoreAPI
from tests.backends import isolated_settings
from tests.factories import T0, Factory, unique

SECRET = "access-secret-5b1e"

NAMESPACES = (
    "jobs",
    "components",
    "dataclasses",
    "executions",
    "metrics",
    "run_requests",
    "audit",
    "maintenance",
    "secrets",
)


def _public_methods(api: StoreAPI) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, member in inspect.getmembers(type(api), inspect.isfunction):
        if not name.startswith("_"):
            yield name, member


def test_every_store_operation_declares_the_role_it_needs(store: MetadataStore) -> None:
    undeclared = [
        f"{namespace}.{name}"
        for namespace in NAMESPACES
        for name, method in _public_methods(getattr(store, namespace))
        if required_role(method) is None
    ]
    assert undeclared == []
    declared = {
        f"{ns}.{name}": required_role(method)
        for ns in NAMESPACES
        for name, method in _public_methods(getattr(store, ns))
    }
    # The split the issue asks for, spot-checked where a mistake would matter most.
    assert declared["jobs.create"] is Role.ADMIN
    assert declared["components.update"] is Role.ADMIN
    assert declared["dataclasses.create"] is Role.ADMIN
    assert declared["secrets.rotate"] is Role.ADMIN
    assert declared["maintenance.gc"] is Role.ADMIN
    assert declared["components.configuration"] is Role.WRITER
    assert declared["run_requests.run_config"] is Role.WRITER
    assert declared["executions.upsert"] is Role.WRITER
    assert declared["metrics.record"] is Role.WRITER
    assert declared["jobs.list"] is Role.READER
    assert declared["audit.list"] is Role.READER


@pytest.fixture
def seeded(store: MetadataStore, factory: Factory) -> dict[str, Any]:
    job = factory.job(
        components=[
            {
                "name": "extract",
                "component_type": "test.step",
                "configuration": {"path": "in.csv", "db": {"password": SECRET}},
            }
        ]
    )
    run = factory.execution(job.name)
    return {"job": job.name, "run": run}


@pytest.fixture
def as_role(store_url: str, tmp_path: Path) -> Iterator[Callable[..., MetadataStore]]:
    opened: list[MetadataStore] = []

    def open_as(role: str, **kwargs: Any) -> MetadataStore:
        store = MetadataStore(
            store_url, settings=isolated_settings(tmp_path / role), role=role, **kwargs
        )
        opened.append(store)
        return store

    yield open_as
    for store in opened:
        store.close()


def _counts(store: MetadataStore) -> dict[str, int]:
    tables = ("job", "component", "component_config", "execution", "metric_point", "run_request")
    with store.engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in (*tables, "audit_event")
        }


def _definition_changes(job: str) -> dict[str, Callable[[MetadataStore], Any]]:
    return {
        "jobs.create": lambda s: s.jobs.create({"name": unique("job")}),
        "jobs.update": lambda s: s.jobs.update(job, {"num_of_retries": 5}),
        "jobs.archive": lambda s: s.jobs.archive(job),
        "components.create": lambda s: s.components.create(
            job, {"name": "more", "component_type": "test.step"}
        ),
        "components.update": lambda s: s.components.update(
            job, "extract", {"configuration": {"path": "other.csv"}}
        ),
        "dataclasses.create": lambda s: s.dataclasses.create({"name": unique("dc")}),
        "secrets.rotate": lambda s: s.secrets.rotate(),
        "maintenance.gc": lambda s: s.maintenance.gc(older_than=T0),
    }


def _run_writes(job: str, run_id: str) -> dict[str, Callable[[MetadataStore], Any]]:
    return {
        "executions.upsert": lambda s: s.executions.upsert(
            {"job": job, "orchestrator": "dagster", "external_run_id": run_id, "status": "success"}
        ),
        "executions.record_attempt": lambda s: s.executions.record_attempt(
            "dagster",
            run_id,
            {"component": "extract", "attempt": 1, "status": "running", "started_at": T0},
        ),
        "metrics.record": lambda s: s.metrics.record(
            [{"component": "extract", "name": "rows", "value": 1.0, "recorded_at": T0}],
            orchestrator="dagster",
            run_id=run_id,
        ),
        "run_requests.create": lambda s: s.run_requests.create({"job": job}),
        "components.configuration": lambda s: s.components.configuration(job, "extract"),
    }


def test_a_writer_cannot_change_definitions_and_nothing_is_written(
    store: MetadataStore, seeded: dict[str, Any], as_role: Callable[..., MetadataStore]
) -> None:
    writer = as_role("writer")
    before = _counts(store)
    for operation, change in _definition_changes(seeded["job"]).items():
        with pytest.raises(PermissionDeniedError) as caught:
            change(writer)
        error = caught.value
        assert (error.operation, error.role, error.source) == (operation, "writer", "store")
        assert error.required == "admin"
        assert operation in str(error) and "ETL_META_ROLE" in str(error)
    assert _counts(store) == before
    assert store.jobs.get(seeded["job"]).num_of_retries == 1


def test_a_writer_records_runs_metrics_requests_and_reads_secrets(
    store: MetadataStore, seeded: dict[str, Any], as_role: Callable[..., MetadataStore]
) -> None:
    writer = as_role("writer")
    results = {
        name: write(writer)
        for name, write in _run_writes(seeded["job"], seeded["run"].external_run_id).items()
    }
    assert results["components.configuration"]["db"] == {"password": SECRET}
    assert results["metrics.record"].inserted == 1
    request = results["run_requests.create"]
    launched = writer.run_requests.mark_launched(
        request.id, orchestrator="dagster", external_run_id="launched-1"
    )
    assert launched.external_run_id == "launched-1"
    assert writer.executions.get(seeded["run"].id, with_steps=True).status.value == "success"


def test_a_reader_reads_masked_data_and_can_neither_write_nor_decrypt(
    store: MetadataStore, seeded: dict[str, Any], as_role: Callable[..., MetadataStore]
) -> None:
    reader = as_role("reader")
    before = _counts(store)
    refused = {
        **_definition_changes(seeded["job"]),
        **_run_writes(seeded["job"], seeded["run"].external_run_id),
    }
    for operation, call in refused.items():
        with pytest.raises(PermissionDeniedError) as caught:
            call(reader)
        assert (caught.value.operation, caught.value.role) == (operation, "reader")
    assert _counts(store) == before
    # Reads work, and show the secret masked.
    component = reader.components.get(seeded["job"], "extract")
    assert SECRET not in component.model_dump_json()
    assert [run.id for run in reader.executions.list(job=seeded["job"])] == [seeded["run"].id]
    assert reader.audit.list(limit=1)


def test_a_refusal_is_logged_with_actor_and_operation(
    seeded: dict[str, Any],
    as_role: Callable[..., MetadataStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = as_role("writer", actor="worker-7")
    with (
        caplog.at_level(logging.WARNING, logger="etl_meta.store.core"),
        pytest.raises(PermissionDeniedError),
    ):
        writer.jobs.archive(seeded["job"])
    assert "refused jobs.archive to worker-7 (role writer, needs admin)" in caplog.text


def test_the_role_comes_from_the_environment_and_bad_roles_are_rejected(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(home=tmp_path).role is Role.ADMIN  # the embedded default: the owner
    monkeypatch.setenv("ETL_META_ROLE", "writer")
    settings = isolated_settings(tmp_path)
    assert Settings(home=tmp_path).role is Role.WRITER
    with MetadataStore(store_url, settings=Settings(home=tmp_path, database_url=store_url)) as s:
        assert s.role is Role.WRITER
        assert "role='writer'" in repr(s)
    with pytest.raises(ValidationError) as caught:
        MetadataStore(store_url, settings=settings, role="superuser")
    assert caught.value.field == "role"


@pytest.mark.parametrize(
    ("actor", "reason"),
    [("   ", "must not be empty"), ("a\x00b", "control"), ("x" * 201, "at most 200")],
)
def test_a_bad_actor_is_refused_when_the_store_opens(
    store_url: str, tmp_path: Path, actor: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        MetadataStore(store_url, settings=isolated_settings(tmp_path), actor=actor)
    assert caught.value.field == "actor" and reason in str(caught.value)


def test_acting_as_names_another_actor_for_the_block_only(
    store: MetadataStore, factory: Factory
) -> None:
    job = factory.job().name
    with store.acting_as("dagster:run-1") as actor:
        assert actor == store.actor == "dagster:run-1"
        store.jobs.update(job, {"num_of_retries": 3})
    store.jobs.update(job, {"num_of_retries": 4})
    first, second = reversed(store.audit.list(entity_type="job", entity_key=job, limit=2))
    assert first.actor == "dagster:run-1"
    assert second.actor == store.settings.actor
    # PostgreSQL records the login the store connected as; SQLite has no logins.
    login = store.engine.url.username if store.dialect == "postgresql" else None
    assert first.db_login == second.db_login == login
    with pytest.raises(ValidationError), store.acting_as(""):
        pass


def test_reading_a_secret_is_audited_without_the_value(
    store: MetadataStore, seeded: dict[str, Any], as_role: Callable[..., MetadataStore]
) -> None:
    job = seeded["job"]
    worker = as_role("writer", actor="dagster:run-42")
    assert worker.components.configuration(job, "extract")["db"]["password"] == SECRET
    (event,) = store.audit.list(action="decrypt")
    assert (event.actor, event.entity_type, event.entity_key) == (
        "dagster:run-42",
        "component",
        f"{job}.extract",
    )
    assert event.after == {"version": 1, "fields": ["db.password"]}
    assert SECRET not in event.model_dump_json()

    # A configuration without secrets decrypts nothing and is not audited.
    store.components.update(job, "extract", {"configuration": {"path": "plain.csv"}})
    assert worker.components.configuration(job, "extract") == {"path": "plain.csv"}
    assert len(store.audit.list(action="decrypt")) == 1
    # An older version is read, and audited, as that version.
    assert worker.components.configuration(job, "extract", version=1)["db"]["password"] == SECRET
    assert store.audit.list(action="decrypt", limit=1)[0].after == {
        "version": 1,
        "fields": ["db.password"],
    }


def test_comparing_configurations_for_apply_decrypts_nothing_visible(
    store: MetadataStore, seeded: dict[str, Any]
) -> None:
    job = seeded["job"]
    same = {"path": "in.csv", "db": {"password": SECRET}}
    assert store.components.configuration_matches(job, "extract", same)
    assert not store.components.configuration_matches(
        job, "extract", {**same, "db": {"password": "other"}}
    )
    assert store.audit.list(action="decrypt") == []


def test_reading_a_run_requests_secrets_is_audited(
    store: MetadataStore, seeded: dict[str, Any], as_role: Callable[..., MetadataStore]
) -> None:
    request = store.run_requests.create(
        {"job": seeded["job"], "run_config": {"ops": {"extract": {"api_key": MASK}}}}
    )
    sensor = as_role("writer", actor="dagster:sensor")
    # Overrides never carry a secret in clear (only its masked echo), but what sits under a
    # secret key is still encrypted, and reading it back is still audited.
    assert sensor.run_requests.run_config(request.id)["ops"]["extract"]["api_key"] == MASK
    (event,) = store.audit.list(action="decrypt")
    assert (event.actor, event.entity_type, event.entity_id) == (
        "dagster:sensor",
        "run_request",
        request.id,
    )
    assert event.after == {"fields": ["ops.extract.api_key"]}
