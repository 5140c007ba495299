"""Processes for the deployment tests: process groups, readiness with deadlines, logs on failure.

Every long-running process (``dagster dev``, Airflow's scheduler, dag-processor, api-server and
triggerer, the process holding a SQLite lock) is started in its own session
(``start_new_session=True``) and stopped by signalling its whole process group, so no child (a
code server, a run worker, a task process) outlives a test. Output goes to a file per process;
:func:`log_tail` prints its end when something fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.dagster._server import REPO_ROOT, free_port, wait_for

__all__ = [
    "REPO_ROOT",
    "ProcessGroup",
    "command_line",
    "descendants",
    "free_port",
    "log_tail",
    "process_group_of",
    "read_texts",
    "wait_for",
    "wait_until_gone",
]


def log_tail(path: Path, chars: int = 5000) -> str:
    """The last ``chars`` characters of ``path``, headed by its name ('' if unreadable)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return f"\n--- end of {path} ---\n{text[-chars:]}"


def read_texts(*roots: Path, suffixes: tuple[str, ...] = ()) -> dict[Path, bytes]:
    """Every regular file under ``roots`` (or the roots themselves when they are files).

    ``suffixes``: only files whose name ends so (all files when empty). Unreadable files (a
    socket, a file removed meanwhile) are left out.
    """
    found: dict[Path, bytes] = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if suffixes and not path.name.endswith(suffixes):
                continue
            with contextlib.suppress(OSError):
                found[path] = path.read_bytes()
    return found


class ProcessGroup:
    """One command in its own session, its output in ``log_path``; :meth:`stop` kills the group."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessGroup:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise (with the end of the log) if the process has exited."""
        if self.proc is None:
            raise AssertionError(f"{self.name} is not running")
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with code {self.proc.returncode}{self.tail()}"
            )

    def tail(self, chars: int = 5000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after ``grace`` seconds.

        Descendants that left the group (Airflow runs each task process in a session of its own)
        are found first, while their parents still live, and killed too.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return
        strays = [pid for pid in descendants(proc.pid) if process_group_of(pid) != proc.pid]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        # Children may outlive the leader (task processes, code servers): kill the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=grace)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` in the process tree (from the process table)."""
    table = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=False
    ).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        child, parent = (int(field) for field in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def process_group_of(pid: int) -> int | None:
    """The process group of ``pid``, or ``None`` when no such process exists any more."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def command_line(pid: int) -> str:
    """``pid``'s command line as the process table shows it ('' when it is gone)."""
    result = subprocess.run(
        ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def wait_until_gone(pid: int, *, timeout: float = 10.0) -> None:
    """Wait until ``pid`` is no longer running (reaped or a zombie of someone else)."""

    def gone() -> bool | None:
        state = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
        return True if not state or state.startswith("Z") else None

    wait_for(f"process {pid} to die", gone, timeout=timeout, interval=0.2)
