"""Store writes that must never hold up Airflow: a circuit breaker and a background writer.

The DAG-run hooks run inside the scheduler loop, one after another, so a hook that waits for the
store stalls all scheduling (a 5 s statement timeout per hook, three hooks: 15 s without
scheduling). The listener therefore only *builds* what it wants to record in the hook (from the
objects Airflow passed, no store access) and hands the write to this module:

* :class:`BackgroundWriter` — a bounded queue and one daemon thread per process that performs
  the writes. :meth:`~BackgroundWriter.submit` never blocks: when the queue is full the write is
  dropped and logged (``etl-meta airflow reconcile`` records it later from Airflow's own record).
* :class:`~etl_meta.breaker.CircuitBreaker` — after a transient failure the store is left
  alone for a cool-down (doubling up to a ceiling while it keeps failing). The writer keeps its
  queue meanwhile and retries the oldest write once the cool-down is over; the task hooks, which
  run in short-lived task processes, skip the store while the breaker is open instead.

Both are per process (a forked child gets fresh ones: a thread does not survive a fork).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from etl_meta.breaker import CircuitBreaker
from etl_meta.errors import is_transient

log = logging.getLogger(__name__)

#: Writes waiting for the store, at most (each is a few small dicts).
DEFAULT_QUEUE_SIZE = 1000
#: First cool-down after a failure, and its ceiling while the store keeps failing.
DEFAULT_COOLDOWN_SECONDS = 5.0
MAX_COOLDOWN_SECONDS = 60.0
__all__ = ["BackgroundWriter", "CircuitBreaker", "Write", "breaker", "reset", "writer"]
#: How long a process exiting normally waits for its queued writes.
EXIT_FLUSH_SECONDS = 2.0


@dataclass(frozen=True)
class Write:
    """One queued store write: what it records (for logs) and the call that records it."""

    what: str
    run_id: str
    call: Callable[[], None]


class BackgroundWriter:
    """A bounded queue of store writes and the daemon thread that performs them in order.

    A write that fails transiently stays at the head of the queue and is retried when the
    breaker's cool-down is over, so writes land in the order the hooks saw them. A write that
    fails for good (a DAG whose job is gone from the store) is logged and dropped.
    """

    def __init__(
        self, *, maxsize: int = DEFAULT_QUEUE_SIZE, breaker: CircuitBreaker | None = None
    ) -> None:
        self.breaker = breaker or CircuitBreaker()
        self._queue: queue.Queue[Write] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self.dropped = 0
        self.written = 0

    def submit(self, write: Write) -> bool:
        """Queue ``write`` without waiting; ``False`` (logged) when the queue is full."""
        try:
            self._queue.put_nowait(write)
        except queue.Full:
            self.dropped += 1
            log.warning(
                "etl-meta: %d store writes are waiting; %s of run %s is left to "
                "`etl-meta airflow reconcile`",
                self._queue.maxsize,
                write.what,
                write.run_id,
            )
            return False
        self._ensure_thread()
        return True

    def pending(self) -> int:
        """Writes queued or in progress."""
        return self._queue.unfinished_tasks

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued write; whether all were done."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Let the thread end after its current write (tests; the thread is a daemon anyway)."""
        self._stopping.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="etl-meta-store-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                write = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._perform(write)
            finally:
                self._queue.task_done()

    def _perform(self, write: Write) -> None:
        while not self._stopping.is_set():
            wait = self.breaker.remaining()
            if wait > 0:
                self._stopping.wait(min(wait, 1.0))
                continue
            try:
                write.call()
            except Exception as exc:
                if is_transient(exc):
                    self.breaker.failed()
                    log.warning(
                        "etl-meta could not record %s of run %s (%s); retrying in %.0f s",
                        write.what,
                        write.run_id,
                        exc,
                        self.breaker.remaining(),
                    )
                    continue
                log.exception(
                    "etl-meta could not record %s of run %s; the store misses it until it is "
                    "reconciled",
                    write.what,
                    write.run_id,
                )
                return
            self.breaker.succeeded()
            self.written += 1
            return


_lock = threading.Lock()
_writers: dict[int, BackgroundWriter] = {}
_breakers: dict[int, CircuitBreaker] = {}


def writer() -> BackgroundWriter:
    """This process's writer (created on first use; a forked child gets its own)."""
    pid = os.getpid()
    with _lock:
        current = _writers.get(pid)
        if current is None:
            current = _writers[pid] = BackgroundWriter(breaker=_breaker_locked(pid))
            if len(_writers) == 1:
                atexit.register(_flush_at_exit)
        return current


def breaker() -> CircuitBreaker:
    """This process's circuit breaker, shared by its writer and its synchronous hooks."""
    with _lock:
        return _breaker_locked(os.getpid())


def _breaker_locked(pid: int) -> CircuitBreaker:
    current = _breakers.get(pid)
    if current is None:  # the module's defaults at creation time (tests shorten them)
        current = _breakers[pid] = CircuitBreaker(DEFAULT_COOLDOWN_SECONDS, MAX_COOLDOWN_SECONDS)
    return current


def reset() -> None:
    """Forget this process's writer and breaker (tests)."""
    pid = os.getpid()
    with _lock:
        old = _writers.pop(pid, None)
        _breakers.pop(pid, None)
    if old is not None:
        old.stop()


def _flush_at_exit() -> None:
    current = _writers.get(os.getpid())
    if current is not None and current.pending() and not current.flush(EXIT_FLUSH_SECONDS):
        log.warning(
            "etl-meta: %d store write(s) not done at exit; `etl-meta airflow reconcile` "
            "records them",
            current.pending(),
        )
