"""Checks applied identically on every backend before anything is written.

SQLite and PostgreSQL disagree on NUL bytes (PostgreSQL rejects them, SQLite truncates or keeps
them), NaN in JSON (JSONB rejects it), string lengths (SQLite ignores ``VARCHAR(n)``) and
timezones. The store validates here so both backends accept and refuse exactly the same input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

from etl_meta.errors import ValidationError

#: Names usable as a Dagster op alias, a Dagster job name and an Airflow task/DAG id.
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTIFIER_MAX = 63
#: Component and dataclass types may be namespaced: ``pandas.read_csv``, ``my-team.loader``.
TYPE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
#: Tag keys follow the Kubernetes/Dagster label shape; values are free text without control chars.
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

DEFAULT_MAX_JSON_BYTES = 256 * 1024
DEFAULT_MAX_JSON_DEPTH = 32


def check_identifier(value: str) -> str:
    """Raise ``ValueError`` unless ``value`` is an identifier-safe name of at most 63 chars."""
    if len(value) > IDENTIFIER_MAX:
        raise ValueError(f"must be at most {IDENTIFIER_MAX} characters")
    if not IDENTIFIER_RE.fullmatch(value):
        raise ValueError(
            "must start with a letter or underscore and contain only letters, digits and "
            "underscores (it is used as a Dagster op name and an Airflow task id)"
        )
    return value


def check_type_name(value: str) -> str:
    """Raise unless ``value`` looks like ``name`` or ``namespace.name`` (max 100 chars)."""
    if len(value) > 100:
        raise ValueError("must be at most 100 characters")
    if not TYPE_NAME_RE.fullmatch(value):
        raise ValueError("must start with a letter or underscore; letters, digits, _ . - only")
    return value


def check_tag_key(value: str) -> str:
    """Tag keys look like labels: ``team``, ``dagster/priority``, ``app.kubernetes.io/name``."""
    if len(value) > IDENTIFIER_MAX:
        raise ValueError(f"must be at most {IDENTIFIER_MAX} characters")
    if not TAG_KEY_RE.fullmatch(value):
        raise ValueError("must start with a letter or digit; letters, digits, _ . - / only")
    return value


def check_text(value: str) -> str:
    """Reject NUL bytes and other control characters (tab and newlines are allowed)."""
    if _CONTROL_RE.search(value):
        raise ValueError("must not contain NUL bytes or control characters")
    return value


#: Longest audit actor (``audit_event.actor`` is VARCHAR(200)).
ACTOR_MAX = 200


def check_actor(value: str) -> str:
    """The audit actor, stripped; :class:`~etl_meta.errors.ValidationError` naming ``actor``.

    Raised when the store opens, so a bad identity fails before the first write, not at it.
    """
    actor = value.strip() if isinstance(value, str) else ""
    if not actor:
        raise ValidationError.single("actor", "must not be empty")
    if len(actor) > ACTOR_MAX:
        raise ValidationError.single("actor", f"must be at most {ACTOR_MAX} characters")
    if _CONTROL_RE.search(actor):
        raise ValidationError.single("actor", "must not contain NUL bytes or control characters")
    return actor


def check_aware(value: datetime) -> datetime:
    """Reject naive datetimes: every timestamp in the store is an instant, not a wall clock."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (e.g. 2026-01-01T00:00:00Z)")
    return value


def check_finite(value: float) -> float:
    """Reject NaN and infinities (PostgreSQL's JSONB and most BI tools cannot hold them)."""
    if not math.isfinite(value):
        raise ValueError("must be a finite number (not NaN or infinity)")
    return value


def check_json_document(
    value: Any,
    *,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> Any:
    """Check that ``value`` is plain JSON within the size and depth limits.

    Plain JSON means: dict keys are strings, values are ``None``/bool/int/finite float/str/list/
    dict, and no string (key or value) contains a NUL byte. Returns ``value`` unchanged.
    """
    _walk_json(value, depth=1, max_depth=max_depth, path="")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        raise ValueError(f"is {size} bytes serialized; the limit is {max_bytes}")
    return value


def _walk_json(value: Any, *, depth: int, max_depth: int, path: str) -> None:
    where = f" at {path}" if path else ""
    if depth > max_depth:
        raise ValueError(f"is nested deeper than {max_depth} levels{where}")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"contains a non-finite number{where}")
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"contains a NUL byte{where}")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"has a non-string key{where}")
            if "\x00" in key:
                raise ValueError(f"has a key with a NUL byte{where}")
            _walk_json(item, depth=depth + 1, max_depth=max_depth, path=f"{path}.{key}".lstrip("."))
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk_json(item, depth=depth + 1, max_depth=max_depth, path=f"{path}[{index}]")
        return
    raise ValueError(f"holds a {type(value).__name__}, which is not JSON{where}")


def check_json_object(value: Any, info: ValidationInfo) -> dict[str, Any]:
    """A JSON document whose top level is an object (configuration, schemas, rules).

    Limits come from the validation context (``max_json_bytes``, ``max_json_depth``) when the store
    passes one, so they follow the store's settings.
    """
    if not isinstance(value, Mapping):
        raise ValueError("must be a JSON object (a mapping)")
    context = info.context or {}
    return dict(
        check_json_document(
            value,
            max_bytes=context.get("max_json_bytes", DEFAULT_MAX_JSON_BYTES),
            max_depth=context.get("max_json_depth", DEFAULT_MAX_JSON_DEPTH),
        )
    )


#: Annotated types for pydantic models.
Identifier = Annotated[str, AfterValidator(check_identifier)]
TypeName = Annotated[str, AfterValidator(check_type_name)]
TagKey = Annotated[str, AfterValidator(check_tag_key)]
SafeText = Annotated[str, AfterValidator(check_text)]
AwareDatetime = Annotated[datetime, AfterValidator(check_aware)]
FiniteFloat = Annotated[float, AfterValidator(check_finite)]
JSONObject = Annotated[dict[str, Any], AfterValidator(check_json_object)]
