"""URL secrets (``SecretURL``): only the password and sensitive query values are secret.

People see which database a component writes to (``postgresql://etl:***@warehouse/db``); the
password is masked wherever configuration is shown and encrypted at rest on its own, the rest of
the URL staying in clear. Anything that is not a URL read the same way by every parser is masked
and encrypted whole (fail closed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from etl_meta import MetadataStore
from etl_meta.components import ComponentResult, ComponentType, register
from etl_meta.components.contracts import SecretText, SecretURL
from etl_meta.errors import NotFoundError
from etl_meta.masking import ENCODED_PREFIX, MASK, mask_value
from etl_meta.secrets import PREFIX, Cipher, SecretDecryptError, has_plaintext_secrets
from tests.backends import TEST_SECRET_KEY, isolated_settings

PASSWORD = "s3cret-Pw-7f2e"
TYPE = "test.url_secrets"
NEW_KEY = Fernet.generate_key().decode()


@register
class UrlSecrets(ComponentType):
    """A writer-like type: a URL secret, a plain secret, a plain value."""

    name = TYPE

    class Config(ComponentType.Config):
        table: str
        connection_url: SecretURL
        password: SecretText | None = None

    def run(self, context: Any, config: Any, inputs: Any) -> ComponentResult:
        return ComponentResult(value=None)


def _masked(url: Any, component_type: str | None = TYPE) -> Any:
    return mask_value({"connection_url": url}, component_type=component_type)["connection_url"]


# -- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://etl:pw@warehouse/db", "postgresql://etl:***@warehouse/db"),
        (
            "postgresql+psycopg://etl:pw@warehouse:5432/db",
            "postgresql+psycopg://etl:***@warehouse:5432/db",
        ),
        # No password: shown in full (Dagster's Launchpad shows where the job writes).
        ("postgresql://warehouse/db", "postgresql://warehouse/db"),
        ("postgresql://etl@warehouse/db", "postgresql://etl@warehouse/db"),
        ("postgresql://etl:@warehouse/db", "postgresql://etl:@warehouse/db"),
        ("sqlite:///output/warehouse.db", "sqlite:///output/warehouse.db"),
        # Sensitive query parameters, by masking's own rule (percent-encoded names too).
        (
            "postgresql://etl@h/db?sslmode=require&sslpassword=x&api_token=y",
            "postgresql://etl@h/db?sslmode=require&sslpassword=***&api_token=***",
        ),
        (
            "postgresql://h/db?password=x;application_name=a",
            "postgresql://h/db?password=***;application_name=a",
        ),
        ("postgresql://h/db?pass%77ord=x", "postgresql://h/db?pass%77ord=***"),
        # IPv6 hosts, host lists, percent-encoded passwords.
        ("postgresql://etl:pw@[::1]:5432/db", "postgresql://etl:***@[::1]:5432/db"),
        ("postgresql://etl:pw@[fe80::1%25eth0]/db", "postgresql://etl:***@[fe80::1%25eth0]/db"),
        ("postgresql://etl:pw@h1:5432,h2:5433/db", "postgresql://etl:***@h1:5432,h2:5433/db"),
        ("postgresql://etl:p%40ss%3Aw%2F@warehouse/db", "postgresql://etl:***@warehouse/db"),
        # An unencoded @ or : in the password: everything up to the last @ is hidden.
        ("postgresql://etl:p@ss:w@warehouse/db", "postgresql://etl:***@warehouse/db"),
    ],
)
def test_a_url_secret_shows_everything_but_its_password_and_sensitive_parameters(
    url: str, shown: str
) -> None:
    assert _masked(url) == shown
    assert _masked(url, component_type=None) == shown  # type unknown: any type's URL keys


@pytest.mark.parametrize(
    "value",
    [
        "host=warehouse password=pw dbname=db",  # libpq keywords: not a URL
        "postgresql://etl:pa/ss@warehouse/db",  # parsers disagree where the password ends
        "postgresql://etl:pa?ss@warehouse/db",
        "postgresql://etl:pa#ss@warehouse/db",
        "postgresql://etl:pw@warehouse/db#fragment",
        "mssql://warehouse;password=pw/db",
        "jdbc:postgresql://warehouse/db?password=pw",
        "postgresql://etl:pw@ware house/db",
        "postgresql://etl:pw@warehouse/db\n",
        "postgresql://[::1/db",
        "warehouse",
        "",
        42,
        {"host": "warehouse", "password": "pw"},
        ["postgresql://etl:pw@warehouse/db"],
    ],
)
def test_a_value_that_is_not_an_unambiguous_url_is_masked_whole(value: Any) -> None:
    assert _masked(value) == MASK


def test_a_url_with_ciphertext_is_masked_under_any_key_and_never_shows_it() -> None:
    stored = Cipher([TEST_SECRET_KEY]).encrypt_document(
        {"table": "t", "connection_url": "postgresql://etl:pw@warehouse/db"}, component_type=TYPE
    )
    assert ENCODED_PREFIX in stored["connection_url"]
    # Even where no type says the key is secret (a type this process does not know).
    for component_type in (TYPE, None, "unknown.type"):
        shown = mask_value(stored, component_type=component_type)
        assert shown["connection_url"] == "postgresql://etl:***@warehouse/db"
    # Ciphertext anywhere else in a URL: masked whole.
    odd = f"postgresql://{ENCODED_PREFIX}x@warehouse/db"
    assert mask_value({"note": odd}) == {"note": MASK}


def test_a_write_table_connection_url_shows_its_host() -> None:
    shown = mask_value(
        {"table": "t", "connection_url": "postgresql://etl:pw@warehouse/db", "password": "pw"},
        component_type="write_table",
    )
    assert shown == {
        "table": "t",
        "connection_url": "postgresql://etl:***@warehouse/db",
        "password": MASK,
    }


# -- at rest ---------------------------------------------------------------------------------


def _create(store: MetadataStore, url: str, name: str = "load", job: str = "nightly") -> None:
    try:
        store.jobs.get(job)
    except NotFoundError:
        store.jobs.create({"name": job, "components": []})
    store.components.create(
        job,
        {
            "name": name,
            "component_type": TYPE,
            "configuration": {"table": "orders", "connection_url": url},
        },
    )


def _raw_configuration(store: MetadataStore, name: str = "load") -> dict[str, Any]:
    with store.engine.connect() as connection:
        value = connection.execute(
            sa.text("SELECT configuration FROM component WHERE name = :name"), {"name": name}
        ).scalar_one()
    return json.loads(value) if isinstance(value, str) else value


def _raw(store: MetadataStore, table: str) -> str:
    with store.engine.connect() as connection:
        # Tuples: a Row's repr shortens long values, which could hide a leak.
        return repr([tuple(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))])


def test_only_the_password_is_stored_encrypted_and_reads_back_exactly(store: MetadataStore) -> None:
    url = f"postgresql://etl:{PASSWORD}%40x@[::1]:5432/db?sslmode=require&sslpassword={PASSWORD}"
    _create(store, url)
    raw = _raw_configuration(store)["connection_url"]
    assert raw.startswith(f"postgresql://etl:{ENCODED_PREFIX}")
    assert raw.endswith("@[::1]:5432/db?sslmode=require&sslpassword=" + raw.rsplit("=", 1)[1])
    assert raw.count(ENCODED_PREFIX) == 2
    for table in ("component", "component_config", "audit_event"):
        text = _raw(store, table)
        assert PASSWORD not in text, table
    assert "[::1]:5432/db?sslmode=require" in _raw(store, "component_config")
    assert store.components.configuration("nightly", "load")["connection_url"] == url
    public = store.components.get("nightly", "load").model_dump()["configuration"]
    assert public["connection_url"] == (
        "postgresql://etl:***@[::1]:5432/db?sslmode=require&sslpassword=***"
    )
    # The read was audited, naming the field only.
    (event,) = store.audit.list(action="decrypt")
    assert event.after["fields"] == ["connection_url"] and PASSWORD not in repr(event)


def test_a_url_without_a_password_is_stored_as_it_is(store: MetadataStore) -> None:
    url = "postgresql://etl@warehouse/db?sslmode=require"
    _create(store, url)
    assert _raw_configuration(store)["connection_url"] == url
    assert store.components.configuration("nightly", "load")["connection_url"] == url
    assert store.audit.list(action="decrypt") == []  # nothing secret was read
    assert (
        store.components.get("nightly", "load").model_dump()["configuration"]["connection_url"]
        == url
    )


def test_a_value_that_is_not_a_url_is_encrypted_whole(store: MetadataStore) -> None:
    dsn = f"host=warehouse password={PASSWORD}"
    _create(store, dsn)
    assert _raw_configuration(store)["connection_url"].startswith(PREFIX)
    assert store.components.configuration("nightly", "load")["connection_url"] == dsn


def test_history_and_audit_diffs_show_the_host_not_the_password(store: MetadataStore) -> None:
    _create(store, f"postgresql://etl:{PASSWORD}@warehouse/db")
    store.components.update(
        "nightly",
        "load",
        {
            "configuration": {
                "table": "orders",
                "connection_url": f"postgresql://etl:{PASSWORD}2@replica/db",
            }
        },
    )
    history = store.components.config_history("nightly", "load")
    shown = [h.model_dump()["configuration"]["connection_url"] for h in history]
    assert shown == ["postgresql://etl:***@warehouse/db", "postgresql://etl:***@replica/db"]
    (update,) = store.audit.list(action="update", entity_type="component")
    assert update.after["configuration"]["connection_url"] == "postgresql://etl:***@replica/db"
    assert update.before["configuration"]["connection_url"] == "postgresql://etl:***@warehouse/db"
    assert PASSWORD not in _raw(store, "audit_event")


def test_reading_with_a_wrong_key_masks_only_the_password(
    store: MetadataStore, store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _create(store, f"postgresql://etl:{PASSWORD}@warehouse/db")
    other = MetadataStore(store_url, settings=isolated_settings(tmp_path, secret_keys=NEW_KEY))
    with other:
        with caplog.at_level(logging.WARNING, logger="etl_meta.secrets"):
            lenient = other.components.configuration("nightly", "load", strict=False)
        assert lenient["connection_url"] == "postgresql://etl:***@warehouse/db"
        assert "nightly.load.configuration.connection_url" in caplog.text
        with pytest.raises(SecretDecryptError) as caught:
            other.components.configuration("nightly", "load")
        assert caught.value.field == "nightly.load.configuration.connection_url"
        assert PASSWORD not in str(caught.value) + caplog.text


def test_rotation_reencrypts_url_passwords_and_splits_urls_stored_whole(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    url = f"postgresql://etl:{PASSWORD}@warehouse/db?token={PASSWORD}"
    _create(store, url)
    # A URL stored whole (before its key was declared a URL secret), written as it was then.
    legacy = Cipher([TEST_SECRET_KEY]).encrypt_value(url, field="configuration.connection_url")
    _create(store, "sqlite:///placeholder.db", name="old")
    with store.engine.begin() as connection:
        document = json.dumps({"table": "orders", "connection_url": legacy})
        for table in ("component", "component_config"):
            id_column = "id" if table == "component" else "component_id"
            ids = "(SELECT id FROM component WHERE name = 'old')"
            connection.execute(
                sa.text(f"UPDATE {table} SET configuration = :doc WHERE {id_column} IN {ids}"),
                {"doc": document},
            )
    assert store.components.configuration("nightly", "old")["connection_url"] == url
    before = _raw_configuration(store)["connection_url"]
    settings = isolated_settings(tmp_path, secret_keys=f"{NEW_KEY},{TEST_SECRET_KEY}")
    with MetadataStore(store_url, settings=settings) as both:
        assert both.secrets.rotate().rows["component"] == 2
        assert both.secrets.rotate().total == 0  # resumable: nothing left to do
        after = _raw_configuration(both)["connection_url"]
        assert after != before and after.startswith("postgresql://etl:" + ENCODED_PREFIX)
        assert "@warehouse/db?token=" in after
        split = _raw_configuration(both, "old")["connection_url"]
        assert split.startswith("postgresql://etl:" + ENCODED_PREFIX) and "@warehouse/db" in split
        assert PASSWORD not in _raw(both, "component") + _raw(both, "component_config")
    with MetadataStore(store_url, settings=isolated_settings(tmp_path, secret_keys=NEW_KEY)) as new:
        assert new.components.configuration("nightly", "load")["connection_url"] == url
        assert new.components.configuration("nightly", "old")["connection_url"] == url


def test_a_stolen_encrypted_password_in_a_url_is_encrypted_again_not_trusted(
    store: MetadataStore,
) -> None:
    _create(store, f"postgresql://etl:{PASSWORD}@warehouse/db")
    raw = _raw_configuration(store)["connection_url"]
    stolen = raw.split("@")[0].split(":", 2)[2]  # the encrypted password, as stored
    borrowed = f"postgresql://etl:{stolen}@attacker.example/db"
    _create(store, borrowed, name="thief")
    # The thief's component holds the ciphertext text it typed, never the decrypted password.
    assert store.components.configuration("nightly", "thief")["connection_url"] == borrowed
    assert PASSWORD not in json.dumps(store.components.configuration("nightly", "thief"))


def test_the_data_migration_sees_url_passwords_in_clear() -> None:
    url = "postgresql://etl:pw@warehouse/db"
    assert has_plaintext_secrets({"connection_url": url}, component_type=TYPE)
    assert not has_plaintext_secrets(
        {"connection_url": "postgresql://warehouse/db"}, component_type=TYPE
    )
    stored = Cipher([TEST_SECRET_KEY]).encrypt_document(
        {"connection_url": url}, component_type=TYPE
    )
    assert not has_plaintext_secrets(stored, component_type=TYPE)
