"""Why the store could not be reached, in words an operator acts on.

libpq reports a failed connection without a SQLSTATE ("connection failed: … Connection refused"),
and PostgreSQL reports a cancelled statement as SQLSTATE 57014, so "the store is unavailable:
OperationalError" was all a user saw. :func:`classify` names the cause — connection refused,
authentication failed, database does not exist, timeout, read-only, locked, … — and says whether
waiting can help. Messages keep the driver's own first line (host, port, database name) with
anything that looks like a password removed: libpq never quotes one, but a DSN pasted into an
error by a wrapper might.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """A short cause (``"connection refused"``) and whether retrying may help."""

    name: str
    transient: bool


REFUSED = Cause("connection refused", True)
AUTHENTICATION = Cause("authentication failed", False)
NO_DATABASE = Cause("database does not exist", False)
NOT_ACCEPTING = Cause("database not accepting connections", True)
TIMEOUT = Cause("timeout", True)
READ_ONLY = Cause("read-only", True)
LOCKED = Cause("locked", True)
TOO_MANY = Cause("too many connections", True)
SHUTTING_DOWN = Cause("server shutting down or restarting", True)
CONNECTION_LOST = Cause("connection lost", True)
HOST_UNKNOWN = Cause("host not found", True)
CANNOT_OPEN = Cause("cannot open the database file", True)
DISK_FULL = Cause("disk full or I/O error", True)
UNKNOWN = Cause("unreachable", True)

#: SQLSTATEs (exact, then two-character classes) with a cause of their own.
_BY_SQLSTATE = {
    "28000": AUTHENTICATION,
    "28P01": AUTHENTICATION,
    "3D000": NO_DATABASE,
    "55000": NOT_ACCEPTING,  # object_not_in_prerequisite_state: ALLOW_CONNECTIONS false
    "57014": TIMEOUT,  # query_canceled: statement_timeout
    "55P03": LOCKED,  # lock_not_available: lock_timeout
    "25006": READ_ONLY,  # read_only_sql_transaction: a standby, or default_transaction_read_only
    "53300": TOO_MANY,
    "57P01": SHUTTING_DOWN,
    "57P02": SHUTTING_DOWN,
    "57P03": SHUTTING_DOWN,  # cannot_connect_now: starting up
    "40001": LOCKED,  # serialization_failure
    "40P01": LOCKED,  # deadlock_detected
}
_BY_CLASS = {"08": CONNECTION_LOST, "53": TOO_MANY, "57": SHUTTING_DOWN, "40": LOCKED}

#: Lower-case fragments of libpq's and sqlite3's messages, checked in order.
_BY_TEXT: tuple[tuple[str, Cause], ...] = (
    ("connection refused", REFUSED),
    ("password authentication failed", AUTHENTICATION),
    ("authentication failed", AUTHENTICATION),
    ("no password supplied", AUTHENTICATION),
    ("no pg_hba.conf entry", AUTHENTICATION),
    ('role "', AUTHENTICATION),  # FATAL: role "x" does not exist
    ("does not exist", NO_DATABASE),  # FATAL: database "x" does not exist
    ("not currently accepting connections", NOT_ACCEPTING),
    ("timeout expired", TIMEOUT),
    ("timed out", TIMEOUT),
    ("statement timeout", TIMEOUT),
    ("read-only", READ_ONLY),
    ("database is locked", LOCKED),
    ("database table is locked", LOCKED),
    ("too many clients", TOO_MANY),
    ("remaining connection slots", TOO_MANY),
    ("the database system is", SHUTTING_DOWN),  # starting up / shutting down / in recovery
    ("terminating connection", SHUTTING_DOWN),
    ("could not translate host name", HOST_UNKNOWN),
    ("name or service not known", HOST_UNKNOWN),
    ("unable to open database", CANNOT_OPEN),
    ("database or disk is full", DISK_FULL),
    ("disk i/o error", DISK_FULL),
    ("server closed the connection", CONNECTION_LOST),
    ("connection is lost", CONNECTION_LOST),
    ("consuming input failed", CONNECTION_LOST),
    ("connection is closed", CONNECTION_LOST),
    ("no route to host", REFUSED),
    ("network is unreachable", REFUSED),
)

_SECRETS = re.compile(r"(password\s*=\s*)\S+|(://[^:/@\s]*:)[^@\s]*(@)", re.IGNORECASE)


def classify(message: str, sqlstate: str | None) -> Cause:
    """The cause of a failure reported as ``message`` (``sqlstate``: when the server sent one)."""
    if sqlstate:
        cause = _BY_SQLSTATE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2])
        if cause is not None:
            return cause
    lowered = message.lower()
    for fragment, cause in _BY_TEXT:
        if fragment in lowered:
            return cause
    return UNKNOWN


def describe(message: str) -> str:
    """The driver's message on one line, without libpq's prefix, hints or anything password-like.

    >>> describe('connection failed: to server at "h" failed: FATAL:  x\\n\\tIs the server up?')
    'to server at "h" failed: FATAL: x'
    """
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = first.removeprefix("connection failed: ")
    first = " ".join(first.split())
    return _SECRETS.sub(
        lambda m: (m.group(1) or m.group(2) or "") + "***" + (m.group(3) or ""), first
    )
