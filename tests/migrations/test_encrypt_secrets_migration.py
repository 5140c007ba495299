"""Migration 0005 encrypts the secrets earlier versions stored in clear; its downgrade decrypts."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta import schema as schema_mod
from etl_meta.db import create_engine
from etl_meta.secrets import PREFIX, SecretsError
from etl_meta.types import JSONDocument
from tests.backends import isolated_settings

SENTINEL = "pl41ntext-legacy-secret"
CONFIG = {"table": "legacy_clear", "password": SENTINEL, "conn": {"dsn": SENTINEL}}


@pytest.fixture
def engine(empty_url, settings):
    engine = create_engine(empty_url, settings=settings)
    yield engine
    engine.dispose()


def _legacy_rows(engine: sa.Engine, home: Path) -> int:
    """Rows as etl-meta 0004 stored them: the secret values in clear (written by raw SQL).

    The rows are created through today's store at head (its models match only the head schema),
    then the schema is taken down to 0004 and the secrets are written in clear by hand.
    """
    keyless = isolated_settings(home, secret_keys=None)
    schema_mod.upgrade(engine, settings=keyless)
    with MetadataStore(engine=engine, settings=keyless) as store:
        store.jobs.create(
            {
                "name": "legacy",
                "components": [
                    {"name": "load", "component_type": "test.step", "configuration": {}}
                ],
            }
        )
        request_id = store.run_requests.create({"job": "legacy", "run_config": {}}).id
    schema_mod.downgrade(engine, "0004", settings=keyless)
    with engine.begin() as connection:
        for table in ("component", "component_config"):
            legacy = sa.table(table, sa.column("configuration", JSONDocument))
            connection.execute(legacy.update().values(configuration=CONFIG))
        connection.execute(
            sa.table("run_request", sa.column("run_config", JSONDocument))
            .update()
            .values(run_config={"password": SENTINEL, "note": "clear-note"})
        )
    return request_id


def _raw(engine: sa.Engine, *tables: str) -> str:
    with engine.connect() as connection:
        return repr(
            [
                # tuple(): a Row's own repr truncates long values.
                [tuple(row) for row in connection.execute(sa.text(f"SELECT * FROM {t}"))]
                for t in tables or ("component", "component_config", "run_request")
            ]
        )


def test_upgrade_encrypts_legacy_plaintext_and_downgrade_decrypts(
    engine: sa.Engine, settings, tmp_path: Path
) -> None:
    request_id = _legacy_rows(engine, tmp_path / "h")
    assert SENTINEL in _raw(engine)

    # No key: refuse with the fix named, change nothing.
    keyless = isolated_settings(tmp_path / "h", secret_keys=None)
    with pytest.raises(SecretsError, match="ETL_META_SECRET_KEYS"):
        schema_mod.upgrade(engine, settings=keyless)
    assert schema_mod.current_revision(engine) == "0004"
    assert SENTINEL in _raw(engine)

    schema_mod.upgrade(engine, settings=settings)
    assert schema_mod.current_revision(engine) == schema_mod.head_revision()
    raw = _raw(engine)
    for table in ("component", "component_config", "run_request"):
        assert SENTINEL not in _raw(engine, table), table
        assert PREFIX in _raw(engine, table), table
    assert "legacy_clear" in raw and "clear-note" in raw
    with MetadataStore(engine=engine, settings=settings) as store:
        assert store.components.configuration("legacy", "load") == CONFIG
        assert store.components.configuration("legacy", "load", version=1) == CONFIG
        assert store.run_requests.run_config(request_id)["password"] == SENTINEL

    # Downgrade needs the key; without it, it refuses and changes nothing.
    with pytest.raises(SecretsError):
        schema_mod.downgrade(engine, "0004", settings=keyless)
    assert schema_mod.current_revision(engine) == schema_mod.head_revision()
    schema_mod.downgrade(engine, "0004", settings=settings)
    raw = _raw(engine)
    assert SENTINEL in raw and PREFIX not in raw


def test_upgrade_without_plaintext_secrets_needs_no_key(engine: sa.Engine, tmp_path: Path) -> None:
    schema_mod.upgrade(engine, settings=isolated_settings(tmp_path, secret_keys=None))
    assert schema_mod.current_revision(engine) == schema_mod.head_revision()
