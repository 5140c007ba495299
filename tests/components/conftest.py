"""Fixtures for the component-type tests: small tables and a scratch database per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.backends import PostgresServer


@pytest.fixture
def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [1, 2, 3, 4],
            "customer_id": [10, 20, 10, 30],
            "amount": [12.5, 80.0, 7.25, 40.0],
            "status": ["placed", "shipped", "delivered", "cancelled"],
        }
    )


@pytest.fixture
def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [10, 20, 40],
            "name": ["Ada", "Grace", "Alan"],
            "country": ["GB", "US", "GB"],
        }
    )


@pytest.fixture
def warehouse_url(
    backend: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> Iterator[str]:
    """An empty database to write tables into: a SQLite file, or a scratch PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
        return
    assert postgres_server is not None
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
