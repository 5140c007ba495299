"""A small client of Airflow's REST API v2: what ``etl-meta airflow reconcile`` reads.

Only the calls reconciliation needs, each a page-walking generator over plain dicts, through
httpx (no Airflow import: the client runs wherever the CLI runs)::

    with AirflowClient("http://airflow:8080", username="admin", password="...") as client:
        for run in client.dag_runs(updated_at_gte=since):
            ...

Authentication: a bearer token given as is, or a username and password exchanged for a JWT at
``POST /auth/token`` (Airflow's simple auth manager and FAB both serve it). A token that expires
during a long pass is renewed once (on 401) when a password is known.

Errors are typed (:class:`AirflowApiError` and its children) and never quote a password or token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from etl_meta.errors import EtlMetaError

log = logging.getLogger(__name__)

#: Airflow's default ``[api] maximum_page_limit``: a larger page is cut to it anyway.
PAGE_LIMIT = 100
#: Run ids per task-instance batch request (a body, so no URL length limit applies).
RUN_BATCH = 50


class AirflowApiError(EtlMetaError):
    """Airflow's REST API refused or failed a request (the message names the call and status)."""


class AirflowUnreachableError(AirflowApiError):
    """The API server could not be reached (refused, timed out, DNS)."""


class AirflowAuthError(AirflowApiError):
    """The API server refused the credentials (401/403)."""


def _segment(value: str) -> str:
    # Airflow run ids hold ':' and '+': one path segment each, fully escaped.
    return quote(value, safe="")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("Airflow's API needs aware datetimes")
    return value.isoformat()


class AirflowClient:
    """Reads DAG runs, task instances, tries and XCom entries from Airflow's REST API v2.

    Args:
        url: the API server's base URL (``http://host:8080``), without ``/api/v2``.
        token: a bearer token (JWT) to use as is.
        username, password: exchanged for a token at ``/auth/token`` when no token is given.
        timeout: seconds per request (connect and read).
        transport: an httpx transport (tests pass an in-process fake).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise AirflowApiError(f"the Airflow URL must start with http:// or https://: {url!r}")
        self.url = url.rstrip("/")
        self._token = token
        self._username = username
        self._password = password
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def _login(self) -> None:
        if self._username is None or self._password is None:
            return
        response = self._send(
            "POST",
            "/auth/token",
            json_body={
                "username": self._username,
                "password": self._password,
            },
            authenticated=False,
        )
        token = response.get("access_token") if isinstance(response, dict) else None
        if not token:
            raise AirflowAuthError("Airflow's /auth/token returned no access_token")
        self._token = str(token)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
        missing_ok: bool = False,
    ) -> Any:
        if authenticated and self._token is None:
            self._login()
        for attempt in (1, 2):
            headers = {"Accept": "application/json"}
            if authenticated and self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                response = self._http.request(
                    method, path, params=params, json=json_body, headers=headers
                )
            except httpx.TimeoutException as exc:
                raise AirflowUnreachableError(
                    f"Airflow at {self.url} did not answer {method} {path} in time"
                ) from exc
            except httpx.TransportError as exc:
                raise AirflowUnreachableError(
                    f"Airflow at {self.url} cannot be reached ({type(exc).__name__}: {exc})"
                ) from exc
            renewable = authenticated and self._password is not None and attempt == 1
            if response.status_code == 401 and renewable:
                self._token = None  # expired during a long pass: log in again, once
                self._login()
                continue
            break
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise AirflowAuthError(
                f"Airflow refused {method} {path} ({response.status_code}): check the token or "
                "the username and password, and the user's permissions"
            )
        if response.status_code >= 400:
            raise AirflowApiError(
                f"Airflow answered {response.status_code} to {method} {path}: {_detail(response)}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise AirflowApiError(f"Airflow answered {method} {path} with no JSON") from exc

    def _pages(
        self, path: str, key: str, params: dict[str, Any], *, limit: int = PAGE_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Every item of an offset-paged listing (stable when ordered by a unique column)."""
        offset = 0
        while True:
            page = self._send("GET", path, params={**params, "limit": limit, "offset": offset})
            items = list(page.get(key) or [])
            yield from items
            offset += len(items)
            total = page.get("total_entries")
            if not items or len(items) < limit or (total is not None and offset >= total):
                return

    # -- reads ---------------------------------------------------------------------------------

    def dag_ids(self, tag: str) -> set[str]:
        """The ids of every DAG tagged ``tag`` (paused ones included)."""
        dags = self._pages("/api/v2/dags", "dags", {"tags": tag, "order_by": "dag_id"})
        return {str(dag["dag_id"]) for dag in dags}

    def dag_runs(self, *, updated_at_gte: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Runs of every DAG changed since ``updated_at_gte`` (all runs when ``None``), by id."""
        params: dict[str, Any] = {"order_by": "id"}
        if updated_at_gte is not None:
            params["updated_at_gte"] = _iso(updated_at_gte)
        return self._pages("/api/v2/dags/~/dagRuns", "dag_runs", params)

    def task_instances(self, runs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """The task instances of ``runs`` (``(dag_id, run_id)`` pairs), batched."""
        wanted = list(dict.fromkeys(runs))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), RUN_BATCH):
            batch = wanted[start : start + RUN_BATCH]
            keys = set(batch)
            offset = 0
            while True:
                body = {
                    "dag_ids": sorted({dag for dag, _ in batch}),
                    "dag_run_ids": sorted({run for _, run in batch}),
                    "page_limit": PAGE_LIMIT,
                    "page_offset": offset,
                    "order_by": "id",
                }
                page = self._send(
                    "POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", json_body=body
                )
                items = list(page.get("task_instances") or [])
                # dag_ids x run_ids may pair a run id with another DAG: keep the asked pairs.
                found += [ti for ti in items if (ti["dag_id"], run_id_of(ti)) in keys]
                offset += len(items)
                if len(items) < PAGE_LIMIT:
                    break
        return found

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        """Every try of one task instance, oldest first (Airflow's task instance history)."""
        path = (
            f"/api/v2/dags/{_segment(dag_id)}/dagRuns/{_segment(run_id)}/taskInstances/"
            f"{_segment(task_id)}/tries"
        )
        page = self._send("GET", path, params={"map_index": map_index}, missing_ok=True)
        items = list((page or {}).get("task_instances") or [])
        return sorted(items, key=lambda item: int(item.get("try_number") or 0))

    def xcom_entries(self, key: str, *, run_after_gte: datetime | None) -> list[dict[str, Any]]:
        """Which task instances hold XCom ``key`` (no values), for runs after ``run_after_gte``."""
        params: dict[str, Any] = {"xcom_key": key}
        if run_after_gte is not None:
            params["run_after_gte"] = _iso(run_after_gte)
        return list(
            self._pages(
                "/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries", "xcom_entries", params
            )
        )

    def xcom_value(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> Any:
        """The value of one XCom entry (``None`` when it is gone)."""
        path = (
            f"/api/v2/dags/{_segment(dag_id)}/dagRuns/{_segment(run_id)}/taskInstances/"
            f"{_segment(task_id)}/xcomEntries/{_segment(key)}"
        )
        # The raw stored value (not ``deserialize``, which renders it as text for people).
        entry = self._send("GET", path, params={"map_index": map_index}, missing_ok=True)
        if entry is None:
            return None
        value = entry.get("value")
        if isinstance(value, str):  # some metadata databases hand the JSON back as text
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value


def run_id_of(item: dict[str, Any]) -> str:
    """The run id of a DAG run, task instance or XCom entry, whichever name the API used."""
    return str(item.get("dag_run_id") or item.get("run_id"))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no detail"
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail)[:300] if detail else response.reason_phrase or "no detail"
