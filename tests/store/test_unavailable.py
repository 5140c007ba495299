"""An unavailable store says why — refused, authentication, no such database, timeout, locked —
never with a password, and only what waiting can fix is retried."""

import pytest
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, StoreUnavailableError
from etl_meta.cli import app
from etl_meta.errors import is_transient
from etl_meta.retry import retry_transient
from tests.backends import isolated_settings
from tests.outages import connections_refused, writes_hang

PASSWORD = "hunter2-never-shown"


def _pg_url(store_url: str, **parts) -> str:
    return make_url(store_url).set(**parts).render_as_string(hide_password=False)


def _open_error(url: str, tmp_path, **settings) -> StoreUnavailableError:
    with pytest.raises(StoreUnavailableError) as caught:
        MetadataStore(
            url, settings=isolated_settings(tmp_path, connect_timeout_seconds=2, **settings)
        )
    return caught.value


def test_a_refused_connection_is_named_and_retried(pg_scratch_url, tmp_path):
    store_url = pg_scratch_url
    error = _open_error(_pg_url(store_url, port=1, password=PASSWORD), tmp_path)
    assert error.cause == "connection refused" and error.transient and is_transient(error)
    assert "(connection refused)" in str(error) and PASSWORD not in str(error)


def test_a_login_the_server_refuses_is_named_and_not_retried(pg_scratch_url, tmp_path):
    store_url = pg_scratch_url
    error = _open_error(_pg_url(store_url, username="no_such_role", password=PASSWORD), tmp_path)
    assert error.cause == "authentication failed" and not is_transient(error)
    assert PASSWORD not in str(error) and PASSWORD not in repr(error.__cause__)
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise error

    with pytest.raises(StoreUnavailableError):
        retry_transient(attempt, max_seconds=30)
    assert len(calls) == 1  # waiting cannot fix a wrong login


def test_a_missing_database_is_named(pg_scratch_url, tmp_path):
    store_url = pg_scratch_url
    error = _open_error(
        _pg_url(store_url, database="etl_meta_no_such_db", password=PASSWORD), tmp_path
    )
    assert error.cause == "database does not exist" and not error.transient
    assert "etl_meta_no_such_db" in str(error) and PASSWORD not in str(error)


def test_a_database_taken_away_is_named_and_retried(pg_scratch_url, tmp_path):
    with connections_refused(pg_scratch_url):
        error = _open_error(pg_scratch_url, tmp_path)
    assert error.cause == "database not accepting connections" and error.transient


def test_a_write_that_waits_on_a_lock_ends_in_a_named_timeout(store, store_url, tmp_path):
    short = isolated_settings(tmp_path, record_wait_seconds=0.5).for_runs()
    with (
        MetadataStore(store_url, settings=short) as bounded,
        writes_hang(store_url),
        pytest.raises(StoreUnavailableError) as caught,
    ):
        bounded.jobs.create({"name": "waits"})
    expected = "locked" if store.dialect == "sqlite" else "timeout"
    assert caught.value.cause == expected and caught.value.transient


def test_the_cli_prints_the_cause_on_one_line_without_the_password(pg_scratch_url):
    from typer.testing import CliRunner

    url = _pg_url(pg_scratch_url, port=1, password=PASSWORD)
    result = CliRunner().invoke(app, ["jobs", "list", "--database-url", url])
    assert result.exit_code != 0
    output = result.output.strip()
    assert "connection refused" in output and PASSWORD not in output
    assert "Traceback" not in output and len(output.splitlines()) == 1
