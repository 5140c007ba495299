"""Which failures another attempt cannot fix: one rule for every orchestrator's retry decision.

Dagster ops turn these into ``dg.Failure(allow_retries=False)``, Airflow tasks into
``AirflowFailException``; every other error goes through the job's retry policy, since a busy
database or a flaky network may well be fine on the next attempt. Retrying a final failure only
repeats it ``num_of_retries`` times and delays the alert.
"""

from __future__ import annotations

from etl_meta.components.errors import ComponentFailed
from etl_meta.errors import EtlMetaError, ValidationError
from etl_meta.secrets import SecretsError

#: Failures that repeat identically on every attempt: the inputs that caused them do not change
#: between attempts. ``ValidationError`` covers invalid configuration, an override of a secret and
#: every sandbox refusal (``SandboxError`` is one); ``SecretsError`` a secret that cannot be
#: decrypted or a missing or malformed key; ``FileNotFoundError`` an input path that is wrong.
FINAL_ERRORS: tuple[type[BaseException], ...] = (ValidationError, SecretsError, FileNotFoundError)


def is_final(exc: BaseException) -> bool:
    """True when retrying the step that raised ``exc`` would fail the same way.

    A :class:`~etl_meta.components.ComponentFailed` says so itself (``retryable``); otherwise the
    error's type decides (:data:`FINAL_ERRORS`)::

        >>> is_final(FileNotFoundError("data/sales.csv"))
        True
        >>> is_final(ConnectionError("server closed the connection"))
        False
    """
    if isinstance(exc, ComponentFailed):
        return not exc.retryable
    return isinstance(exc, FINAL_ERRORS)


def describe_failure(exc: BaseException) -> str:
    """The message an orchestrator shows for a final failure.

    etl-meta's own errors already say what is wrong; for Python's (``FileNotFoundError``) the
    type is half the meaning, so it leads, as it does in a traceback's last line.
    """
    if isinstance(exc, EtlMetaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
