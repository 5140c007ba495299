"""A real ``airflow api-server`` on the test session's Airflow database (not collected as tests).

Started once per session when a reconcile test first needs it (about 6 s), with Airflow's simple
auth manager and one user, ``admin``/``admin``; stopped at the end of the session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

USERNAME = PASSWORD = "admin"
START_TIMEOUT = 60.0


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(root: Path) -> ApiServer:
    """Start the API server on ``root``'s Airflow home (the environment names its database)."""
    passwords = root / "simple_auth_passwords.json"
    passwords.write_text(json.dumps({USERNAME: PASSWORD}))
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "etl-meta-tests-jwt-secret-not-a-real-one-0123456789",
        "AIRFLOW__API__SECRET_KEY": "etl-meta-tests-secret-key",
    }
    log = root / "api-server.log"
    airflow = Path(sys.executable).with_name("airflow")
    process = subprocess.Popen(
        [str(airflow), "api-server", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = ApiServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"airflow api-server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/api/v2/version", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"airflow api-server did not start in {START_TIMEOUT:.0f} s")
