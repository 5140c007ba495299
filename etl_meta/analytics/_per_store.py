"""Something a store's reads keep beside the store (a pool of connections), one per process.

The analytics reads keep their own connections next to the store's engine: ADBC connections
for large reads (:mod:`._adbc`) and psycopg connections for small ones (:mod:`._read_pool`).
Each is made on first use, closed when the store's engine is disposed (``store.close()``) or
the store is garbage-collected, and never shared with a forked child: a process forked after a
read (Airflow's task runner, ``multiprocessing``) finds its parent's connections, whose sockets
the parent still uses. The child makes its own and leaves the parent's alone: closing them
would end the parent's sessions too (libpq sends its goodbye on the shared socket).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from etl_meta.store import MetadataStore

T = TypeVar("T")


class PerStore(Generic[T]):
    """A value made once per store and process; ``close(value)`` with the store's engine."""

    def __init__(self, close: Callable[[T], None]) -> None:
        self._close = close
        self._made: weakref.WeakKeyDictionary[MetadataStore, tuple[int, T]] = (
            weakref.WeakKeyDictionary()
        )
        self._inherited: list[T] = []  # a forked child's parent's values: kept, never closed
        self._listened: weakref.WeakSet[MetadataStore] = weakref.WeakSet()
        self._lock = threading.Lock()

    def get(self, store: MetadataStore, make: Callable[[MetadataStore], T]) -> T:
        """This process's value for ``store``, made by ``make(store)`` on first use."""
        found = self._made.get(store)
        pid = os.getpid()
        if found is not None and found[0] == pid:
            return found[1]
        with self._lock:
            found = self._made.get(store)
            if found is not None and found[0] == pid:
                return found[1]
            if found is not None:  # inherited through fork: the parent's
                self._inherited.append(found[1])
            value = make(store)
            self._made[store] = (pid, value)
            if store not in self._listened:
                sa.event.listen(store.engine, "engine_disposed", self._on_dispose(store))
                self._listened.add(store)
            weakref.finalize(store, self._closer(pid, value))
            return value

    def current(self, store: MetadataStore) -> T | None:
        """This process's value for ``store``, if it has made one (the tests look)."""
        found = self._made.get(store)
        return found[1] if found is not None and found[0] == os.getpid() else None

    def _closer(self, pid: int, value: T) -> Callable[[], None]:
        def close() -> None:
            if os.getpid() == pid:  # only the process that made it
                self._close(value)

        return close

    def _on_dispose(self, store: MetadataStore) -> Callable[[Any], None]:
        ref = weakref.ref(store)

        def on_dispose(_engine: sa.Engine) -> None:
            owner = ref()
            with self._lock:
                found = self._made.pop(owner, None) if owner is not None else None
            if found is not None:
                self._closer(*found)()

        return on_dispose
