"""A circuit breaker for store calls made inside an orchestrator's own loops.

Airflow's scheduler hooks and Dagster's sensor ticks must not wait on a store that is down: after
a transient failure the store is left alone for a cool-down, which doubles (up to a ceiling)
while failures go on, and closes again on the first success. Callers that skip meanwhile leave
the record to reconciliation.

Our own rather than a library's: the background writer sleeps exactly until the cool-down ends
(:meth:`CircuitBreaker.remaining`) and the cool-down grows while the store stays down; pybreaker
and circuitbreaker expose neither.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: First cool-down after a failure, and its ceiling while the store keeps failing.
DEFAULT_COOLDOWN_SECONDS = 5.0
MAX_COOLDOWN_SECONDS = 60.0


class CircuitBreaker:
    """Open after a failure, for a cool-down that doubles while failures go on.

    Thread-safe. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        max_cooldown_seconds: float = MAX_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = cooldown_seconds
        self._max = max(max_cooldown_seconds, cooldown_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._cooldown = cooldown_seconds
        self._open_until = 0.0
        self.failures = 0

    def allows(self) -> bool:
        """Whether a store attempt may be made now (closed, or the cool-down is over)."""
        with self._lock:
            return self._clock() >= self._open_until

    def remaining(self) -> float:
        """Seconds left in the cool-down (0 when closed)."""
        with self._lock:
            return max(self._open_until - self._clock(), 0.0)

    def succeeded(self) -> None:
        """The store answered: close, and start the next cool-down from the base again."""
        with self._lock:
            self._open_until = 0.0
            self._cooldown = self._base
            self.failures = 0

    def failed(self) -> None:
        """The store did not answer: open for the current cool-down, and double the next."""
        with self._lock:
            self._open_until = self._clock() + self._cooldown
            self._cooldown = min(self._cooldown * 2, self._max)
            self.failures += 1
