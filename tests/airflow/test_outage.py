"""A store that refuses or hangs never holds up Airflow: hooks queue or skip, tasks wait."""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from etl_meta import schema
from etl_meta.airflow import background, listener, stores
from etl_meta.components import ComponentResult, ComponentType, register
from etl_meta.errors import StoreUnavailableError
from tests.airflow.support import (
    attempts,
    chain_job,
    drain,
    exported_dags,
    fake_task_instance,
    handed_off,
)
from tests.outages import writes_hang as store_locked_for_writes

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


@pytest.fixture
def quick_failures(monkeypatch: pytest.MonkeyPatch, airflow_env) -> None:
    """Short store timeouts and cool-downs, so a test waits for the store in milliseconds."""
    monkeypatch.setenv("ETL_META_AIRFLOW_LISTENER_SQLITE_BUSY_TIMEOUT_MS", "100")
    monkeypatch.setenv("ETL_META_AIRFLOW_LISTENER_STATEMENT_TIMEOUT_MS", "200")
    monkeypatch.setattr(background, "DEFAULT_COOLDOWN_SECONDS", 0.1)
    monkeypatch.setattr(background, "MAX_COOLDOWN_SECONDS", 0.2)
    background.reset()
    stores.dispose_all()


def dag_run(run_id: str, *, end_date: datetime | None = None) -> SimpleNamespace:
    """What the scheduler passes to the DAG-run hooks (no task instance has run yet)."""
    return SimpleNamespace(
        dag_id="chain",
        run_id=run_id,
        dag=SimpleNamespace(tags={"etl-meta"}),
        conf={},
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        end_date=end_date,
        get_task_instances=lambda: [],
    )


def opened_on(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that open the listener's store from now on."""
    threads: list[str] = []
    real = stores.open_store

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(listener, "open_store", spy)
    return threads


def test_a_dag_run_hook_hands_its_write_off_and_it_lands_once_the_store_is_back(
    store, store_url, quick_failures, monkeypatch
):
    chain_job(store)
    threads = opened_on(monkeypatch)
    with store_locked_for_writes(store_url):
        listener.on_dag_run_running(dag_run=dag_run("manual__locked"), msg="running")
        listener.on_dag_run_failed(
            dag_run=dag_run("manual__locked", end_date=datetime(2026, 1, 1, 0, 5, tzinfo=UTC)),
            msg="failed",
        )
        # Back in the scheduler loop: both writes are waiting, none was made on this thread.
        assert background.writer().pending() == 2
        assert threading.current_thread().name not in threads
        assert store.executions.find("airflow", "manual__locked") is None
    drain()
    recorded = store.executions.find("airflow", "manual__locked")
    assert recorded.status == "failed"
    assert recorded.ended_at == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert set(threads) == {"etl-meta-store-writer"}
    assert background.breaker().failures == 0  # closed again by the write that landed


def test_dag_run_hooks_queue_even_when_the_store_refuses_connections(
    store, quick_failures, monkeypatch
):
    chain_job(store)
    monkeypatch.setenv("ETL_META_DATABASE_URL", UNREACHABLE)
    threads = opened_on(monkeypatch)
    for index in range(3):
        listener.on_dag_run_running(dag_run=dag_run(f"manual__refused_{index}"), msg="running")
    assert background.writer().pending() == 3
    assert threading.current_thread().name not in threads


def test_a_full_queue_drops_the_newest_write_and_says_reconcile_records_it(caplog):
    release = threading.Event()
    done: list[str] = []
    writer = background.BackgroundWriter(maxsize=1)

    def write(name: str, *, wait: bool = False) -> background.Write:
        def call() -> None:
            if wait:
                release.wait(10)
            done.append(name)

        return background.Write(what=f"DAG run {name}", run_id=f"run_{name}", call=call)

    try:
        assert writer.submit(write("first", wait=True))
        while writer._queue.qsize():  # the thread took the first write and waits in it
            threading.Event().wait(0.01)
        assert writer.submit(write("second"))
        with caplog.at_level(logging.WARNING, logger="etl_meta.airflow.background"):
            assert not writer.submit(write("third"))
        assert writer.dropped == 1
        assert "run_third" in caplog.text and "etl-meta airflow reconcile" in caplog.text
        release.set()
        assert writer.flush(timeout=10)
        assert done == ["first", "second"]
    finally:
        release.set()
        writer.stop()


def test_a_write_that_fails_for_good_is_dropped_and_the_next_one_lands(caplog):
    writer = background.BackgroundWriter()
    done: list[str] = []

    def broken() -> None:
        raise ValueError("a job the store no longer knows")

    try:
        with caplog.at_level(logging.ERROR, logger="etl_meta.airflow.background"):
            writer.submit(background.Write("DAG run success", "run_broken", broken))
            writer.submit(background.Write("DAG run success", "run_ok", lambda: done.append("ok")))
            assert writer.flush(timeout=10)
        assert done == ["ok"]
        assert "run_broken" in caplog.text and "reconciled" in caplog.text
        assert writer.breaker.failures == 0  # not the store's fault: the breaker stays closed
    finally:
        writer.stop()


def test_the_breaker_opens_after_a_failure_for_a_cooldown_that_doubles_up_to_a_ceiling():
    now = [100.0]
    breaker = background.CircuitBreaker(2.0, 5.0, clock=lambda: now[0])
    assert breaker.allows()
    breaker.failed()
    assert not breaker.allows() and breaker.remaining() == 2.0
    now[0] += 2.0
    assert breaker.allows()
    breaker.failed()
    assert breaker.remaining() == 4.0
    now[0] += 4.0
    breaker.failed()
    assert breaker.remaining() == 5.0  # the ceiling
    breaker.succeeded()
    assert breaker.allows() and breaker.failures == 0
    breaker.failed()
    assert breaker.remaining() == 2.0  # back to the first cool-down


def test_task_hooks_give_up_within_the_record_wait_then_skip_the_store_while_the_breaker_is_open(
    airflow_env, monkeypatch, caplog
):
    monkeypatch.setenv("ETL_META_DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("ETL_META_RECORD_WAIT_SECONDS", "0")
    background.reset()
    threads = opened_on(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="etl_meta.airflow.listener"):
        listener.on_task_instance_success(None, fake_task_instance("manual__down_1"))
        assert len(threads) == 1  # one try: the record wait is 0
        assert not background.breaker().allows()
        listener.on_task_instance_success(None, fake_task_instance("manual__down_2"))
        listener.on_task_instance_failed(None, fake_task_instance("manual__down_3"), error="boom")
    assert len(threads) == 1  # the breaker kept the next hooks away from the store
    for run_id in ("manual__down_1", "manual__down_2", "manual__down_3"):
        assert run_id in caplog.text
    assert "connection refused" in caplog.text  # the cause, as the store names it
    assert caplog.text.count("etl-meta airflow reconcile") == 2


def test_a_task_opening_the_store_during_an_outage_waits_for_it(
    store_url, airflow_env, monkeypatch
):
    real = schema.check_schema
    calls: list[int] = []

    def flaky(engine: Any) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise StoreUnavailableError("the store is unavailable (connection refused): test")
        real(engine)

    monkeypatch.setattr(schema, "check_schema", flaky)
    opened = stores.open_store("task", actor="airflow:chain/run/a/try-1")
    assert len(calls) == 3 and opened.executions.find("airflow", "run") is None

    stores.dispose_all()
    calls.clear()
    monkeypatch.setenv("ETL_META_STORE_WAIT_SECONDS", "0")
    with pytest.raises(StoreUnavailableError, match="connection refused"):
        stores.open_store("task", actor="airflow:chain/run/a/try-1")
    assert len(calls) == 1


def test_the_schema_is_checked_once_per_process_whoever_opens_the_store_first(
    store_url, airflow_env, monkeypatch
):
    real = schema.check_schema
    calls: list[int] = []
    monkeypatch.setattr(schema, "check_schema", lambda engine: (calls.append(1), real(engine)))
    for purpose in ("listener", "task", "listener", "task"):
        stores.open_store(purpose, actor="airflow:chain/run/a/try-1")
    assert len(calls) == 1


def test_a_task_that_cannot_read_its_configuration_fails_with_a_retryable_error(
    store, airflow_env, monkeypatch
):
    chain_job(store, num_of_retries=1, b_config={"n": 1})
    dags = exported_dags(store)
    monkeypatch.setenv("ETL_META_DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("ETL_META_STORE_WAIT_SECONDS", "0")
    monkeypatch.setenv("ETL_META_RECORD_WAIT_SECONDS", "0")
    stores.dispose_all()
    run = dags["chain"].test()
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    # Retried (try 2) rather than failed for good at try 1, as AirflowFailException would.
    assert tries["a"] == ("failed", 2) and tries["c"] == ("failed", 2)
    assert tries["b"][0] == "upstream_failed"


def test_a_run_the_listener_could_not_record_is_recorded_once_the_store_is_back(
    store, store_url, quick_failures, monkeypatch
):
    monkeypatch.setenv("ETL_META_RECORD_WAIT_SECONDS", "0.2")
    monkeypatch.setenv("ETL_META_SQLITE_BUSY_TIMEOUT_MS", "100")
    monkeypatch.setenv("ETL_META_STATEMENT_TIMEOUT_MS", "200")
    chain_job(store, num_of_retries=0, b_config={"n": 1})
    dags = exported_dags(store)
    with store_locked_for_writes(store_url):
        run = dags["chain"].test()
    assert run.state == "success"
    # Every try's metrics wait in Airflow's own database, with nothing but names and numbers.
    points = handed_off(run.run_id)
    assert {
        task: sorted((p.name, p.value, p.attempt) for p in found) for task, found in points.items()
    } == {
        "a": [("inputs", 0.0, 1), ("total", 1.0, 1)],
        "c": [("inputs", 0.0, 1), ("total", 10.0, 1)],
        "b": [("inputs", 2.0, 1), ("total", 12.0, 1)],
    }
    drain()  # the DAG-run hook's write waited in the queue for the lock to go
    execution = store.executions.find("airflow", run.run_id, with_steps=True)
    assert execution.status == "success"
    assert attempts(store, run.run_id) == {
        ("a", 1): ("success", None),
        ("b", 1): ("success", None),
        ("c", 1): ("success", None),
    }


#: The outage a ``test.airflow_blackout`` task holds during its first try (set by the test).
BLACKOUT: dict[str, Any] = {}


@register
class BlackoutType(ComponentType):
    """Try 1: takes the store's write lock, records metrics into it, fails. Try 2: lets go,
    records again, succeeds."""

    name = "test.airflow_blackout"

    def run(self, context, config, inputs):
        if context.attempt == 1:
            BLACKOUT["stack"].enter_context(store_locked_for_writes(BLACKOUT["url"]))
            context.record_metrics({"seen": 1.0})
            raise ConnectionError("the warehouse hung up")
        BLACKOUT["stack"].close()
        context.record_metrics({"seen": 2.0})
        return ComponentResult(value=None)


def test_metrics_of_a_retried_try_survive_its_retry_and_are_recorded_once(
    store, store_url, quick_failures, monkeypatch
):
    monkeypatch.setenv("ETL_META_RECORD_WAIT_SECONDS", "0.2")
    monkeypatch.setenv("ETL_META_SQLITE_BUSY_TIMEOUT_MS", "100")
    store.jobs.create(
        {
            "name": "blackout",
            "num_of_retries": 1,
            "components": [{"name": "probe", "component_type": "test.airflow_blackout"}],
        }
    )
    dags = exported_dags(store)
    with ExitStack() as stack:
        BLACKOUT.update(stack=stack, url=store_url)
        run = dags["blackout"].test()
    drain()
    assert run.state == "success"
    # Try 2 found try 1's points (Airflow had cleared its XCom) and recorded them.
    execution = store.executions.find("airflow", run.run_id)
    points = sorted(
        (p.name, p.attempt, p.value) for p in store.metrics.list(execution_id=execution.id)
    )
    assert points == [("seen", 1, 1.0), ("seen", 2, 2.0)]
    assert handed_off(run.run_id) == {}  # nothing is left for reconciliation to read
