"""The store owns transactions: all or nothing, typed errors, no values in messages."""

import threading
import traceback

import pytest
import sqlalchemy as sa

from etl_meta import (
    AlreadyExistsError,
    EtlMetaError,
    IntegrityError,
    MetadataStore,
    StoreUnavailableError,
)
from etl_meta.models import Component, Job

SENTINEL = "sentinel-4f9c2e-do-not-leak"


def _full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_work_inside_a_failed_transaction_is_rolled_back_entirely(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.jobs.create({"name": "a"})
        store.components.create("a", {"name": "c", "component_type": "test.step"})
        raise RuntimeError("caller gave up")
    assert store.jobs.list(include_archived=True) == []
    assert store.audit.list() == []


def test_store_calls_inside_a_transaction_share_it(store):
    with store.transaction():
        store.jobs.create({"name": "a"})
        assert store.jobs.get("a").name == "a"  # sees its own uncommitted write
        assert store.in_transaction()
    assert not store.in_transaction()
    assert store.jobs.exists("a")


def test_a_unique_violation_from_the_database_is_typed_and_quotes_no_values(store):
    store.jobs.create({"name": SENTINEL[:20].replace("-", "_")})
    with pytest.raises(AlreadyExistsError) as caught, store.transaction() as session:
        session.add(Job(name=SENTINEL[:20].replace("-", "_")))
        session.flush()
    assert SENTINEL[:20].replace("-", "_") not in _full_text(caught.value)


def test_a_check_violation_never_leaks_the_row_it_rejected(store, factory):
    job = factory.job(components=[])
    with pytest.raises(IntegrityError) as caught, store.transaction() as session:
        # Bypass validation to reach the database's own CHECK; PostgreSQL's error detail
        # would quote the whole failing row, configuration included.
        session.execute(
            sa.insert(Component.__table__).values(
                job_id=job.id,
                name="c",
                component_type="test.step",
                configuration={"password": SENTINEL},
                status="active",
                config_version=0,
                created_at=job.created_at,
                updated_at=job.created_at,
            )
        )
    assert caught.value.constraint in (None, "ck_component_current_version_positive")
    assert SENTINEL not in _full_text(caught.value)
    assert SENTINEL not in str(caught.value.__cause__)


def test_an_unreachable_server_is_a_typed_error_without_the_password():
    url = "postgresql://etl:pw-" + SENTINEL + "@127.0.0.1:9/nowhere"
    with pytest.raises(StoreUnavailableError) as caught:
        MetadataStore(url)
    assert SENTINEL not in _full_text(caught.value)


def test_the_store_repr_hides_the_password():
    store = MetadataStore(
        "postgresql://etl:pw-" + SENTINEL + "@127.0.0.1:9/nowhere", check_schema=False
    )
    assert SENTINEL not in repr(store) and "***" in repr(store)


def test_concurrent_read_then_write_transactions_all_succeed_and_lose_no_revision(store):
    """SQLite takes the write lock up front (BEGIN IMMEDIATE); PostgreSQL locks the row.

    With SQLite's default deferred BEGIN, a good share of these would fail with "database is
    locked"; without refreshing the locked row, PostgreSQL would lose revision bumps.
    """
    store.jobs.create({"name": "counter"})
    errors: list[BaseException] = []

    def bump(worker: int, times: int) -> None:
        try:
            for i in range(times):
                with store.transaction():
                    store.jobs.get("counter")  # read first, then write, in one transaction
                    store.jobs.update("counter", {"description": f"worker {worker} #{i}"})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(w, 10)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.jobs.get("counter").revision == 41


def test_every_error_the_store_raises_on_purpose_is_an_etl_meta_error(store):
    with pytest.raises(EtlMetaError):
        store.jobs.get("missing")
    with pytest.raises(EtlMetaError):
        store.jobs.create({"name": "bad name"})
