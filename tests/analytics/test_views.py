"""The analyst views (migration 0002) on each backend: columns, values, and no secrets.

Timestamps are ``timestamptz`` on PostgreSQL and the stored UTC text on SQLite; booleans are
``boolean`` and ``0``/``1``; ``v_metric_daily.day`` is a ``date`` and ``YYYY-MM-DD`` text. The
helpers below compare them the same way on both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta.masking import ENCRYPTED_PREFIX
from etl_meta.roles import READER_VIEWS
from tests.factories import T0
from tests.seed import seed_every_table

SECRET = "view-secret-5b0c"
SECRET_V2 = "view-secret-v2-91aa"
URL = "sqlite:///out.db"
RUN_CONFIG_MARKER = "run-config-marker-77e2"

COLUMNS = {
    "v_run": [
        "run_id",
        "job",
        "orchestrator",
        "external_run_id",
        "status",
        "started_at",
        "ended_at",
        "duration_seconds",
        "job_revision",
        "error",
        "parent_run_id",
        "root_run_id",
        "attempts",
        "retries",
        "created_at",
    ],
    "v_step_attempt": [
        "run_id",
        "job",
        "external_run_id",
        "orchestrator",
        "component",
        "component_type",
        "attempt",
        "is_final_attempt",
        "status",
        "started_at",
        "ended_at",
        "duration_seconds",
        "config_version",
        "error",
    ],
    "v_metric": [
        "metric_id",
        "run_id",
        "job",
        "external_run_id",
        "orchestrator",
        "component",
        "name",
        "attempt",
        "is_final_attempt",
        "step",
        "value",
        "recorded_at",
    ],
    "v_metric_daily": ["day", "job", "component", "name", "points", "mean", "min", "max", "last"],
    "v_job": [
        "job",
        "num_of_retries",
        "strategy_type",
        "file_logging",
        "revision",
        "is_archived",
        "tags",
        "components",
        "created_at",
        "updated_at",
    ],
    "v_run_tag": [
        "run_id",
        "job",
        "orchestrator",
        "external_run_id",
        "key",
        "value",
        "source",
        "updated_at",
    ],
}


def rows(store: MetadataStore, view: str, order_by: str = "") -> list[dict[str, Any]]:
    query = f"SELECT * FROM {view}" + (f" ORDER BY {order_by}" if order_by else "")
    with store.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.exec_driver_sql(query)]


def ts(value: Any) -> datetime | None:
    """A view timestamp as an aware UTC datetime (SQLite gives the stored text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def flag(value: Any) -> bool:
    """A view boolean (``0``/``1`` on SQLite)."""
    assert value in (True, False, 0, 1), value
    return bool(value)


def day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@pytest.fixture
def seeded(store: MetadataStore) -> dict[str, Any]:
    """Two jobs, a retried run with metrics over two days, a run still going, secrets stored."""
    store.jobs.create(
        {
            "name": "nightly",
            "num_of_retries": 3,
            "file_logging": True,
            "strategy_type": "sequential",
            "tags": {"team": "data", "env": "prod", "a": "1"},
            "components": [
                {
                    "name": "extract",
                    "component_type": "read_csv",
                    "configuration": {"path": "in.csv"},
                },
                {
                    "name": "load",
                    "component_type": "write_table",
                    "depends_on": ["extract"],
                    "configuration": {"table": "t", "connection_url": URL, "password": SECRET},
                },
                {"name": "report", "component_type": "test.step", "depends_on": ["load"]},
            ],
        }
    )
    store.components.archive("nightly", "report")  # not counted in v_job.components
    # A second configuration version: the first (with SECRET) stays in component_config.
    store.components.update(
        "nightly",
        "load",
        {"configuration": {"table": "t", "connection_url": URL, "password": SECRET_V2}},
    )
    store.jobs.create({"name": "adhoc", "components": []})
    store.jobs.archive("adhoc")

    failed = store.executions.upsert(
        {
            "job": "nightly",
            "orchestrator": "dagster",
            "external_run_id": "run-a",
            "status": "failed",
            "started_at": T0,
            "ended_at": T0 + timedelta(seconds=90.5),
            "error": "load gave up",
            "run_config": {"note": RUN_CONFIG_MARKER, "password": SECRET},
        },
        steps=[
            {
                "component": "extract",
                "attempt": 1,
                "status": "success",
                "config_version": 1,
                "started_at": T0,
                "ended_at": T0 + timedelta(seconds=10),
            },
            {"component": "load", "attempt": 1, "status": "failed", "error": "conn refused"},
            {"component": "load", "attempt": 2, "status": "failed", "error": "conn refused"},
            {
                "component": "load",
                "attempt": 3,
                "status": "failed",
                "config_version": 2,
                "started_at": T0 + timedelta(seconds=20),
                "ended_at": T0 + timedelta(seconds=32.25),
                "error": "timeout",
            },
        ],
    )
    running = store.executions.upsert(
        {
            "job": "nightly",
            "orchestrator": "airflow",
            "external_run_id": "run-b",
            "status": "running",
            "started_at": T0 + timedelta(minutes=5),
            "parent_run_id": "run-a",
            "root_run_id": "run-a",
            "tags": {"conf.experiment": "B", "conf.password": SECRET},
        },
    )
    store.executions.tag("run-a", {"reviewed": "yes"})
    hour = timedelta(hours=1)
    store.metrics.record(
        [
            ("extract", "rows", 7.0, 0, 1, T0),
            ("load", "rows", 100.0, 0, 1, T0 + hour),  # a retried attempt: not final
            ("load", "rows", 15.0, 0, 3, T0 + 3 * hour),  # recorded last on Jan 1
            ("load", "rows", 10.0, 1, 3, T0 + hour),
            ("load", "rows", 35.0, 2, 3, T0 + 2 * hour),
            ("load", "rows", 40.0, 3, 3, T0 + 25 * hour),  # Jan 2
        ],
        orchestrator="dagster",
        run_id="run-a",
    )
    store.metrics.record(
        [("load", "rows", 20.0, 0, 1, T0 + hour / 2)],  # final in its own run
        orchestrator="airflow",
        run_id="run-b",
    )
    store.run_requests.create({"job": "nightly", "run_config": {"password": SECRET}})
    return {"failed": failed, "running": running}


def test_every_view_exists_with_its_documented_columns(store, seeded):
    views = {name for name in sa.inspect(store.engine).get_view_names() if name.startswith("v_")}
    assert views == set(COLUMNS) == set(READER_VIEWS)
    for view, columns in COLUMNS.items():
        with store.engine.connect() as connection:
            result = connection.exec_driver_sql(f"SELECT * FROM {view} WHERE 1 = 0")
            assert list(result.keys()) == columns, view


def test_no_view_has_a_configuration_or_password_column(store, seeded):
    for view, columns in COLUMNS.items():
        assert not [c for c in columns if "config" in c and c != "config_version"], view
        assert not [c for c in columns if "password" in c or "run_config" in c], view
    for view in COLUMNS:
        names = [c["name"] for c in sa.inspect(store.engine).get_columns(view)]
        assert not [n for n in names if ("config" in n and n != "config_version")], view
        assert not [n for n in names if "password" in n], view


def test_secrets_and_run_config_appear_in_no_view(store, seeded):
    with store.engine.connect() as connection:
        stored = " ".join(
            str(tuple(r))
            for table in ("component", "component_config", "execution")
            for r in connection.exec_driver_sql(f"SELECT * FROM {table}")
        )
    # Secrets are encrypted at rest (docs/security.md); the ciphertext and the run config marker
    # really are in the base tables, so the scan below proves something.
    assert SECRET not in stored and SECRET_V2 not in stored
    assert ENCRYPTED_PREFIX in stored and RUN_CONFIG_MARKER in stored
    for view in COLUMNS:
        text = " ".join(repr(row) for row in rows(store, view))
        assert text, f"{view} is empty: the scan would prove nothing"
        for needle in (SECRET, SECRET_V2, RUN_CONFIG_MARKER, ENCRYPTED_PREFIX):
            assert needle not in text, (view, needle)


def test_v_run_durations_attempts_and_retries(store, seeded):
    by_id = {r["external_run_id"]: r for r in rows(store, "v_run", "run_id")}
    failed, running = by_id["run-a"], by_id["run-b"]
    assert failed["run_id"] == seeded["failed"].id
    assert (failed["job"], failed["orchestrator"], failed["status"]) == (
        "nightly",
        "dagster",
        "failed",
    )
    assert failed["duration_seconds"] == pytest.approx(90.5, abs=1e-3)
    assert (failed["attempts"], failed["retries"]) == (4, 2)
    assert failed["error"] == "load gave up"
    assert ts(failed["started_at"]) == T0
    assert ts(failed["ended_at"]) == T0 + timedelta(seconds=90.5)
    assert ts(failed["created_at"]) == seeded["failed"].created_at

    assert running["duration_seconds"] is None  # not ended yet
    assert (running["attempts"], running["retries"]) == (0, 0)
    assert (running["parent_run_id"], running["root_run_id"]) == ("run-a", "run-a")
    assert running["orchestrator"] == "airflow"


def test_v_run_agrees_with_the_python_api(store, seeded):
    for run in store.executions.list(with_steps=True, limit=100):
        (row,) = [r for r in rows(store, "v_run") if r["run_id"] == run.id]
        assert row["job"] == run.job_name
        assert row["status"] == run.status
        assert row["job_revision"] == run.job_revision
        assert ts(row["started_at"]) == run.started_at and ts(row["ended_at"]) == run.ended_at
        if run.duration_seconds is None:
            assert row["duration_seconds"] is None
        else:
            assert row["duration_seconds"] == pytest.approx(run.duration_seconds, abs=1e-3)
        steps = run.steps or []
        assert row["attempts"] == len(steps)
        assert row["retries"] == sum(1 for s in steps if s.attempt > 1)  # as `etl-meta runs list`


def test_v_step_attempt_marks_the_final_attempt_of_each_step(store, seeded):
    found = rows(store, "v_step_attempt", "run_id, component, attempt")
    summary = [
        (r["external_run_id"], r["component"], r["attempt"], flag(r["is_final_attempt"]))
        for r in found
    ]
    assert summary == [
        ("run-a", "extract", 1, True),
        ("run-a", "load", 1, False),
        ("run-a", "load", 2, False),
        ("run-a", "load", 3, True),
    ]
    extract, load1, _, load3 = found
    assert extract["component_type"] == "read_csv" and load3["component_type"] == "write_table"
    assert extract["duration_seconds"] == pytest.approx(10.0, abs=1e-3)
    assert load3["duration_seconds"] == pytest.approx(12.25, abs=1e-3)
    assert load1["duration_seconds"] is None and ts(load1["started_at"]) is None
    assert (extract["config_version"], load3["config_version"]) == (1, 2)
    assert (load1["status"], load1["error"]) == ("failed", "conn refused")
    assert ts(load3["ended_at"]) == T0 + timedelta(seconds=32.25)
    assert {r["job"] for r in found} == {"nightly"}
    assert {r["orchestrator"] for r in found} == {"dagster"}


def test_v_metric_final_attempt_is_per_run_and_component(store, seeded):
    found = rows(store, "v_metric", "run_id, component, attempt, step")
    summary = [
        (
            r["external_run_id"],
            r["component"],
            r["attempt"],
            r["step"],
            r["value"],
            flag(r["is_final_attempt"]),
        )
        for r in found
    ]
    assert summary == [
        ("run-a", "extract", 1, 0, 7.0, True),
        ("run-a", "load", 1, 0, 100.0, False),
        ("run-a", "load", 3, 0, 15.0, True),
        ("run-a", "load", 3, 1, 10.0, True),
        ("run-a", "load", 3, 2, 35.0, True),
        ("run-a", "load", 3, 3, 40.0, True),
        ("run-b", "load", 1, 0, 20.0, True),  # attempt 1 is the last one of run-b
    ]
    assert {r["job"] for r in found} == {"nightly"} and {r["name"] for r in found} == {"rows"}
    assert ts(found[0]["recorded_at"]) == T0
    assert len({r["metric_id"] for r in found}) == len(found)
    final = store.metrics.list(execution_id=seeded["failed"].id, final_attempt_only=True)
    assert len(final) == sum(
        1 for r in found if r["run_id"] == seeded["failed"].id and r["is_final_attempt"]
    )


def test_v_metric_daily_aggregates_final_attempts_per_utc_day(store, seeded):
    found = rows(store, "v_metric_daily", "day, component, name")
    summary = {
        (day(r["day"]), r["job"], r["component"], r["name"]): (
            r["points"],
            r["mean"],
            r["min"],
            r["max"],
            r["last"],
        )
        for r in found
    }
    assert summary == {
        (date(2026, 1, 1), "nightly", "extract", "rows"): (1, 7.0, 7.0, 7.0, 7.0),
        # run-a attempt 3 (10, 35, 15) + run-b attempt 1 (20); run-a attempt 1 (100) excluded.
        # "last" is the point recorded last (15 at 03:00), not the highest value or step.
        (date(2026, 1, 1), "nightly", "load", "rows"): (4, 20.0, 10.0, 35.0, 15.0),
        (date(2026, 1, 2), "nightly", "load", "rows"): (1, 40.0, 40.0, 40.0, 40.0),
    }


def test_v_job_lists_definitions_with_sorted_tags_and_live_components(store, seeded):
    found = {r["job"]: r for r in rows(store, "v_job", "job")}
    nightly, adhoc = found["nightly"], found["adhoc"]
    api = store.jobs.get("nightly")
    assert nightly["tags"] == "a=1, env=prod, team=data"
    assert nightly["components"] == 2  # "report" is archived
    assert (nightly["num_of_retries"], nightly["strategy_type"]) == (3, "sequential")
    assert flag(nightly["file_logging"]) is True and flag(nightly["is_archived"]) is False
    assert nightly["revision"] == api.revision
    assert ts(nightly["created_at"]) == api.created_at
    assert ts(nightly["updated_at"]) == api.updated_at
    assert (adhoc["tags"], adhoc["components"], flag(adhoc["is_archived"])) == ("", 0, True)


def test_v_run_tag_lists_every_tag_of_every_run_masked(store, seeded):
    found = [
        (r["run_id"], r["job"], r["orchestrator"], r["external_run_id"], r["key"], r["value"])
        for r in rows(store, "v_run_tag", "run_id, key")
    ]
    failed, running = seeded["failed"].id, seeded["running"].id
    assert found == [
        (failed, "nightly", "dagster", "run-a", "reviewed", "yes"),
        (running, "nightly", "airflow", "run-b", "conf.experiment", "B"),
        (running, "nightly", "airflow", "run-b", "conf.password", "***"),
    ]
    sources = {r["key"]: r["source"] for r in rows(store, "v_run_tag")}
    assert sources == {"reviewed": "user", "conf.experiment": "airflow", "conf.password": "airflow"}
    (tag,) = [r for r in rows(store, "v_run_tag") if r["key"] == "reviewed"]
    assert ts(tag["updated_at"]) is not None


def test_views_over_the_shared_seed(store):
    seed_every_table(store)
    (run,) = rows(store, "v_run")
    assert (run["attempts"], run["retries"]) == (3, 1)
    assert run["duration_seconds"] == pytest.approx(9.0, abs=1e-3)
    (job,) = rows(store, "v_job")
    assert (job["tags"], job["components"]) == ("env=prod, team=finance", 2)
    assert [flag(r["is_final_attempt"]) for r in rows(store, "v_metric", "metric_id")] == [
        True,
        True,
    ]
    assert len(rows(store, "v_metric_daily")) == 2
