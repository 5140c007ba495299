"""Where ``etl-meta airflow reconcile`` finds Airflow's API server, and how it logs in.

Read from the environment, so the CLI and the ``etl_meta_reconcile`` maintenance DAG share it::

    ETL_META_AIRFLOW_API_URL    http://airflow-api:8080 (default, inside Airflow: [api] base_url)
    ETL_META_AIRFLOW_TOKEN      a bearer token (JWT), used as is
    ETL_META_AIRFLOW_USERNAME   otherwise a user, exchanged for a token at /auth/token
    ETL_META_AIRFLOW_PASSWORD

Command-line options (``--url``, ``--token``, ``--username``, ``--password``) take precedence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from etl_meta.airflow.rest import AirflowApiError, AirflowClient

URL_ENV = "ETL_META_AIRFLOW_API_URL"
TOKEN_ENV = "ETL_META_AIRFLOW_TOKEN"
USERNAME_ENV = "ETL_META_AIRFLOW_USERNAME"
PASSWORD_ENV = "ETL_META_AIRFLOW_PASSWORD"


@dataclass(frozen=True)
class ApiAccess:
    """The API server's URL and the credentials to use there (``repr`` hides the secrets)."""

    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        who = "token" if self.token else (self.username or "anonymous")
        return f"ApiAccess(url={self.url!r}, as={who!r})"

    def client(self, *, timeout: float = 30.0) -> AirflowClient:
        """A client logged in with these credentials (lazily, at its first request)."""
        return AirflowClient(
            self.url,
            token=self.token,
            username=self.username,
            password=self.password,
            timeout=timeout,
        )


def api_access(
    *,
    url: str | None = None,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    default_url: str | None = None,
) -> ApiAccess:
    """The given values, else the environment's (``default_url`` last); typed error if no URL."""
    resolved = url or os.environ.get(URL_ENV, "").strip() or default_url
    if not resolved:
        raise AirflowApiError(
            f"no Airflow API URL: pass --url or set {URL_ENV} (e.g. http://localhost:8080)"
        )
    username = username or os.environ.get(USERNAME_ENV) or None
    password = password or os.environ.get(PASSWORD_ENV) or None
    if (username is None) != (password is None):
        raise AirflowApiError(
            f"give both a username and a password ({USERNAME_ENV}, {PASSWORD_ENV}), or a token"
        )
    return ApiAccess(
        url=resolved,
        token=token or os.environ.get(TOKEN_ENV) or None,
        username=username,
        password=password,
    )
