"""Errors raised by component types while they run.

Messages name components, columns, rules and counts, never row values or configuration values:
they end up in orchestrator logs and in the store, and a value may be personal data or a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from etl_meta.errors import EtlMetaError


class ComponentFailed(EtlMetaError):
    """A component could not produce a usable result (bad data, wrong wiring, a refused write).

    Built-in types raise it instead of a library's own exception when that exception's message
    could leak a secret or row values, or when the cause needs naming in etl-meta's terms.
    ``component`` is the component's name when known; ``checks`` holds the failed data checks
    of a ``validate`` step (each a mapping with ``rule``, ``column``, ``passed``,
    ``failing_rows`` and ``detail``).

    ``retryable`` tells orchestrators whether another attempt could succeed: a refused write may
    (the database was busy), failed data checks cannot (the same data fails the same way), so by
    default a failure with ``checks`` is final and any other is retryable.
    """

    def __init__(
        self,
        message: str,
        *,
        component: str | None = None,
        checks: Sequence[Mapping[str, Any]] = (),
        retryable: bool | None = None,
    ) -> None:
        self.component = component
        self.checks = tuple(checks)
        self.retryable = (not self.checks) if retryable is None else retryable
        super().__init__(message)


class ComponentInputError(ComponentFailed):
    """A component received the wrong number or kind of inputs (a wiring problem in the job).

    Never retryable: the next attempt gets the same inputs.
    """

    def __init__(self, message: str, *, component: str | None = None) -> None:
        super().__init__(message, component=component, retryable=False)
