"""The REST client's contract where a real API server cannot easily misbehave: renewals, typed
errors, escaping, paging."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from etl_meta.airflow.rest import (
    AirflowApiError,
    AirflowAuthError,
    AirflowClient,
    AirflowUnreachableError,
)


class FakeAirflow:
    """Records every request; answers from ``routes`` (path -> callable(request) -> response)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.valid_token = "token-1"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/auth/token":
            body = json.loads(request.content)
            if body != {"username": "admin", "password": "pw"}:
                return httpx.Response(401, json={"detail": "Invalid credentials"})
            self.tokens_issued += 1
            self.valid_token = f"token-{self.tokens_issued}"
            return httpx.Response(201, json={"access_token": self.valid_token})
        if request.headers.get("Authorization") != f"Bearer {self.valid_token}":
            return httpx.Response(401, json={"detail": "Token expired"})
        if request.url.path == "/api/v2/dags":
            offset = int(request.url.params["offset"])
            dags = [{"dag_id": f"dag_{i}"} for i in range(offset, min(offset + 100, 150))]
            return httpx.Response(200, json={"dags": dags, "total_entries": 150})
        if request.url.path.endswith("/tries"):
            return httpx.Response(404, json={"detail": "not found"})
        return httpx.Response(500, json={"detail": "boom"})


def client_for(fake: FakeAirflow, **kwargs: Any) -> AirflowClient:
    kwargs.setdefault("username", "admin")
    kwargs.setdefault("password", "pw")
    return AirflowClient("http://airflow:8080", transport=httpx.MockTransport(fake), **kwargs)


def test_listings_are_walked_page_by_page():
    fake = FakeAirflow()
    with client_for(fake) as client:
        assert client.dag_ids("etl-meta") == {f"dag_{i}" for i in range(150)}
    offsets = [r.url.params["offset"] for r in fake.requests if r.url.path == "/api/v2/dags"]
    assert offsets == ["0", "100"]


def test_an_expired_token_is_renewed_once_with_the_password():
    fake = FakeAirflow()
    with client_for(fake) as client:
        client.dag_ids("etl-meta")
        fake.valid_token = "rotated-by-the-server"  # every token issued so far is now expired
        assert len(client.dag_ids("etl-meta")) == 150
    assert fake.tokens_issued == 2


def test_a_refused_login_is_an_auth_error_that_never_quotes_the_password():
    with (
        pytest.raises(AirflowAuthError) as refused,
        client_for(FakeAirflow(), password="s3cret-pw") as client,
    ):
        client.dag_ids("etl-meta")
    assert "s3cret-pw" not in str(refused.value)


def test_a_given_token_is_used_as_is_and_not_renewed():
    fake = FakeAirflow()
    with (
        pytest.raises(AirflowAuthError),
        client_for(fake, token="stale", username=None, password=None) as client,
    ):
        client.dag_ids("etl-meta")
    assert fake.tokens_issued == 0


def test_run_ids_are_escaped_and_a_missing_task_has_no_tries():
    fake = FakeAirflow()
    with client_for(fake) as client:
        assert client.tries("d", "manual__2026-01-01T00:00:00+00:00", "t") == []
    path = fake.requests[-1].url.raw_path.decode()
    assert "manual__2026-01-01T00%3A00%3A00%2B00%3A00" in path


def test_server_errors_and_unreachable_servers_are_typed():
    with pytest.raises(AirflowApiError, match="500"), client_for(FakeAirflow()) as client:
        client.xcom_value("d", "r", "t", "etl_meta_metrics")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    unreachable = AirflowClient(
        "http://airflow:8080", token="t", transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(AirflowUnreachableError, match="cannot be reached"):
        unreachable.dag_ids("etl-meta")
    with pytest.raises(AirflowApiError, match="http:// or https://"):
        AirflowClient("airflow:8080")
