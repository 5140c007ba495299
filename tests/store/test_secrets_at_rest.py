"""Secrets encrypted at rest: ciphertext in every raw row, plaintext only for running code."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.cli import app
from etl_meta.components.overrides import resolve_configuration
from etl_meta.errors import NotFoundError, ValidationError
from etl_meta.masking import MASK
from etl_meta.secrets import (
    PREFIX,
    Cipher,
    SecretDecryptError,
    SecretKeyMissingError,
    init_key_file,
)
from tests.backends import TEST_SECRET_KEY, isolated_settings

SENTINEL = "s3ntinel-Pa55word-9f1c"
SENTINEL_2 = "s3ntinel-t0ken-77ab"
NEW_KEY = Fernet.generate_key().decode()

CONFIG = {
    "table": "orders_clear",
    "password": SENTINEL,
    "nested": {"api_token": SENTINEL_2, "region": "eu-clear"},
    "targets": [{"credential": {"user": "u", "pw": SENTINEL}}, "plain-item"],
}
# Run-time overrides may only echo a secret masked (one holding a secret is refused, see
# tests/security/test_secret_overrides.py); the echo is a secret position, encrypted all the same.
RUN_CONFIG = {"load": {"password": MASK, "table": "visible-note"}}


def _store(url: str, home: Path, **overrides: object) -> MetadataStore:
    return MetadataStore(url, settings=isolated_settings(home, **overrides))


def _seed(store: MetadataStore) -> int:
    store.jobs.create(
        {
            "name": "nightly",
            "components": [
                {"name": "load", "component_type": "test.step", "configuration": CONFIG},
            ],
        }
    )
    store.components.update("nightly", "load", {"configuration": {**CONFIG, "table": "v2"}})
    return store.run_requests.create({"job": "nightly", "run_config": RUN_CONFIG}).id


def _raw(store: MetadataStore, table: str) -> str:
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
    assert rows, table
    return repr([tuple(row) for row in rows])


def test_raw_rows_hold_ciphertext_only_and_plain_values_in_clear(store: MetadataStore) -> None:
    _seed(store)
    for table in ("component", "component_config", "run_request", "audit_event"):
        text = _raw(store, table)
        assert SENTINEL not in text and SENTINEL_2 not in text, table
    for table in ("component", "component_config"):
        text = _raw(store, table)
        assert "eu-clear" in text and "plain-item" in text and PREFIX in text
    assert "visible-note" in _raw(store, "run_request")
    assert PREFIX in _raw(store, "run_request")


def test_only_the_running_code_paths_decrypt(store: MetadataStore) -> None:
    request_id = _seed(store)
    assert store.components.configuration("nightly", "load") == {**CONFIG, "table": "v2"}
    assert store.components.configuration("nightly", "load", version=1) == CONFIG
    assert store.run_requests.run_config(request_id) == RUN_CONFIG
    public = store.components.get("nightly", "load")
    assert public.model_dump()["configuration"]["password"] == MASK
    assert SENTINEL not in repr(store.components.config_history("nightly", "load"))
    assert SENTINEL not in store.run_requests.get(request_id).model_dump_json()
    assert PREFIX not in store.components.get("nightly", "load").model_dump_json()


def test_setting_the_same_secret_configuration_again_changes_nothing(store: MetadataStore) -> None:
    _seed(store)
    before = store.components.get("nightly", "load").config_version
    again = store.components.update("nightly", "load", {"configuration": {**CONFIG, "table": "v2"}})
    assert again.config_version == before


def test_writing_a_secret_without_a_key_fails_closed_naming_the_field(
    store_url: str, tmp_path: Path
) -> None:
    with _store(store_url, tmp_path / "nokey", secret_keys=None) as keyless:
        with pytest.raises(SecretKeyMissingError) as caught:
            keyless.jobs.create(
                {
                    "name": "nightly",
                    "components": [
                        {"name": "load", "component_type": "test.step", "configuration": CONFIG}
                    ],
                }
            )
        assert isinstance(caught.value, ValidationError)
        assert caught.value.field == "components.0.configuration.password"
        assert SENTINEL not in str(caught.value)
        with pytest.raises(NotFoundError):
            keyless.jobs.get("nightly")  # nothing was written
        keyless.jobs.create({"name": "plain", "components": []})
        with pytest.raises(SecretKeyMissingError):
            keyless.run_requests.create({"job": "plain", "run_config": RUN_CONFIG})
        assert keyless.run_requests.list() == []
        # Configuration without secrets needs no key.
        keyless.components.create(
            "plain", {"name": "c", "component_type": "test.step", "configuration": {"a": 1}}
        )
        assert keyless.components.configuration("plain", "c") == {"a": 1}


def test_reading_without_the_key_is_masked_and_the_runner_fails_clearly(
    store: MetadataStore, store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request_id = _seed(store)
    for overrides in ({"secret_keys": None}, {"secret_keys": NEW_KEY}):
        with _store(store_url, tmp_path / "other", **overrides) as other:
            assert (
                other.components.get("nightly", "load").model_dump()["configuration"]["password"]
                == MASK
            )
            with caplog.at_level(logging.WARNING, logger="etl_meta.secrets"):
                lenient = other.components.configuration("nightly", "load", strict=False)
            assert lenient["password"] == MASK and lenient["nested"]["region"] == "eu-clear"
            assert "nightly.load.configuration.password" in caplog.text
            assert SENTINEL not in caplog.text
            with pytest.raises(SecretDecryptError) as caught:
                other.components.configuration("nightly", "load")
            # PostgreSQL's JSONB orders keys its own way: any secret field may come first.
            assert caught.value.field in {
                "nightly.load.configuration.password",
                "nightly.load.configuration.nested.api_token",
                "nightly.load.configuration.targets.0.credential",
            }
            assert SENTINEL not in str(caught.value)
            with pytest.raises(SecretDecryptError):
                other.run_requests.run_config(request_id)
            lenient_run_config = other.run_requests.run_config(request_id, strict=False)
            assert lenient_run_config["load"]["table"] == "visible-note"


def test_rotation_reencrypts_everything_resumably_then_the_old_key_can_go(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    request_id = _seed(store)
    old_rows = {t: _raw(store, t) for t in ("component", "component_config", "run_request")}
    with _store(store_url, tmp_path / "r", secret_keys=f"{NEW_KEY},{TEST_SECRET_KEY}") as both:
        result = both.secrets.rotate(batch_size=1)
        assert result.rows == {"component": 1, "component_config": 2, "run_request": 1}
        assert result.batches == 4
        assert both.secrets.rotate(batch_size=1).total == 0  # resumable: nothing left to do
        with both.engine.connect() as connection:
            events = connection.execute(
                sa.text("SELECT * FROM audit_event WHERE action = 'rotate_secrets'")
            ).all()
        assert len(events) == 4 and SENTINEL not in repr(events)
        for table, before in old_rows.items():
            after = _raw(both, table)
            assert after != before and SENTINEL not in after
    with _store(store_url, tmp_path / "r", secret_keys=NEW_KEY) as new_only:
        assert new_only.components.configuration("nightly", "load") == {**CONFIG, "table": "v2"}
        assert new_only.components.configuration("nightly", "load", version=1) == CONFIG
        assert new_only.run_requests.run_config(request_id) == RUN_CONFIG
    with pytest.raises(SecretDecryptError):
        store.components.configuration("nightly", "load")  # the old key alone no longer works


def test_a_ciphertext_echoed_as_an_override_never_replaces_the_stored_secret() -> None:
    token = Cipher([TEST_SECRET_KEY]).encrypt_value("x", field="f")
    assert resolve_configuration({"conn": "real"}, {"conn": token}) == {"conn": "real"}


def test_input_that_looks_encrypted_is_encrypted_again_not_trusted(store: MetadataStore) -> None:
    _seed(store)
    with store.engine.connect() as connection:
        stolen = connection.execute(sa.text("SELECT configuration FROM component")).scalar_one()
    if isinstance(stolen, str):
        import json

        stolen = json.loads(stolen)
    store.jobs.create(
        {
            "name": "other",
            "components": [
                {
                    "name": "c",
                    "component_type": "test.step",
                    "configuration": {"password": stolen["password"]},
                }
            ],
        }
    )
    assert store.components.configuration("other", "c")["password"] == stolen["password"]


def test_cli_generate_key_init_and_rotate(
    store: MetadataStore, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["secrets", "generate-key"])
    assert result.exit_code == 0
    Fernet(result.output.strip())

    path = tmp_path / "home" / "secret.key"
    assert init_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert init_key_file(path) is False and path.read_text() == first

    _seed(store)
    monkeypatch.setenv("ETL_META_SECRET_KEYS", f"{NEW_KEY},{TEST_SECRET_KEY}")
    from etl_meta.config import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(
            app, ["secrets", "rotate", "--batch-size", "2", "--database-url", store_url]
        )
        assert result.exit_code == 0, result.output
        assert "re-encrypted 4 row(s)" in result.output
        result = runner.invoke(app, ["secrets", "rotate", "--database-url", store_url])
        assert "already under the newest key" in result.output
    finally:
        get_settings.cache_clear()


def test_cli_init_creates_an_owner_only_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_meta.config import get_settings

    monkeypatch.delenv("ETL_META_SECRET_KEYS")
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path / "demo"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["secrets", "init"])
        assert result.exit_code == 0, result.output
        key_file = tmp_path / "demo" / "secret.key"
        assert "secret.key" in result.output
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        settings = get_settings()
        assert Cipher.from_settings(settings).configured
    finally:
        get_settings.cache_clear()
