"""Checks applied identically on every backend before anything is written.

SQLite and PostgreSQL disagree on NUL bytes (PostgreSQL rejects them, SQLite truncates or keeps
them), NaN in JSON (JSONB rejects it), string lengths (SQLite ignores ``VARCHAR(n)``) and
timezones. The store validates here so both backends accept and refuse exactly the same input.

Pydantic's verdicts become etl-meta's here too (:func:`validate_input`,
:func:`translate_validation_error`): field paths and reasons, never the input.
"""

from __future__ import annotations

import decimal
import difflib
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from etl_meta.errors import FieldProblem, ValidationError

#: Names usable as a Dagster op alias, a Dagster job name and an Airflow task/DAG id.
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTIFIER_MAX = 63
#: Component and dataclass types may be namespaced: ``pandas.read_csv``, ``my-team.loader``.
TYPE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
#: Tag keys follow the Kubernetes/Dagster label shape; values are free text without control chars.
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
#: What free text (descriptions, tag values, run ids, errors) may not hold: C0 controls but tab
#: and newlines, DEL, and the C1 controls U+0080-U+009F (terminal controls too: U+009B is CSI).
_TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Bidi embeddings and overrides. An override (RLO, U+202E) makes terminals and UIs draw the letters
#: after it in reverse, so ``invoice<U+202E>txt.exe`` reads ``invoiceexe.txt`` ("Trojan Source").
#: No text needs them: the isolates U+2066-U+2069 and the marks U+200E/U+200F/U+061C do the
#: legitimate job and stay allowed, as do zero-width joiners and spaces, which Persian, Indic
#: scripts and emoji need; they are kept as inert data. Identifiers and tag keys, where a look-alike
#: would pass for another name, are ASCII-only anyway.
_BIDI_OVERRIDE_RE = re.compile("[\u202a-\u202e]")
#: Lone surrogates are not Unicode text: UTF-8 cannot encode them, so neither database can store
#: them (the drivers raise ``UnicodeEncodeError`` mid-transaction).
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
#: JSON keys printed as they are in paths (``a.b``); any other key is printed JSON-escaped.
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_\-]+")

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


def check_tag_key(value: str, *, max_length: int = IDENTIFIER_MAX) -> str:
    """Tag keys look like labels: ``team``, ``dagster/priority``, ``app.kubernetes.io/name``."""
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    if not TAG_KEY_RE.fullmatch(value):
        raise ValueError("must start with a letter or digit; letters, digits, _ . - / only")
    return value


def check_text(value: str) -> str:
    """Reject what no stored text may hold: control characters, bidi overrides, lone surrogates.

    Tab and newlines are allowed. See ``_BIDI_OVERRIDE_RE`` for why bidi *overrides* are refused
    while isolates, marks and zero-width characters are kept as data.
    """
    if _TEXT_CONTROL_RE.search(value):
        raise ValueError("must not contain NUL bytes or control characters")
    if _BIDI_OVERRIDE_RE.search(value):
        raise ValueError(
            "must not contain bidirectional embedding or override characters (U+202A-U+202E)"
        )
    if _SURROGATE_RE.search(value):
        raise ValueError("must not contain lone surrogates (not valid Unicode text)")
    return value


#: ANSI escape sequences (colours, cursor moves: CSI ``ESC [ … final``; window titles: OSC
#: ``ESC ] … BEL``): removed whole by :func:`clean_text`, so no stray ``[31m`` is left behind.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")


def clean_text(value: str, *, max_chars: int | None = None) -> str:
    """``value`` made storable as text: what :func:`check_text` refuses is removed, not refused.

    For text etl-meta records but did not write — an orchestrator's error message, coloured by a
    library, is still the error to record. ANSI escape sequences go whole; other control
    characters, bidi overrides and lone surrogates are dropped; ``max_chars`` cuts with ``…``.
    """
    text = _ANSI_RE.sub("", value)
    for pattern in (_TEXT_CONTROL_RE, _BIDI_OVERRIDE_RE, _SURROGATE_RE):
        text = pattern.sub("", text)
    text = text.strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text


def storable(value: str) -> bool:
    """Whether both databases can compare ``value`` with stored text (no NUL, no lone surrogate).

    Lookups use it to answer "not found" for a name that cannot exist, identically on SQLite and
    PostgreSQL, instead of letting PostgreSQL refuse the parameter (or the driver fail to encode
    it) mid-transaction.
    """
    return "\x00" not in value and not _SURROGATE_RE.search(value)


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
    try:
        return check_text(actor)
    except ValueError as exc:
        raise ValidationError.single("actor", str(exc)) from None


#: What pydantic's strict-type errors say instead of "Input should be a valid integer", which
#: reads as a bug when the input was ``"3"``: the store does not convert, and says so.
STRICT_TYPE_MESSAGES = {
    "int_type": "must be an integer (booleans, strings and floats are not converted)",
    "bool_type": "must be true or false (numbers and strings are not converted)",
}


def strict_int(value: Any, field: str, *, minimum: int | None = None) -> int:
    """``value`` if it is an ``int`` (never a bool, a string or a float) of at least ``minimum``;
    else :class:`~etl_meta.errors.ValidationError` naming ``field``.

    For keyword arguments of the store's queries (``limit``, ``before_id``, …), which no pydantic
    model checks: ``limit="3"`` is refused as ``{"num_of_retries": "3"}`` is.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError.single(field, STRICT_TYPE_MESSAGES["int_type"])
    if minimum is not None and value < minimum:
        raise ValidationError.single(field, f"must be at least {minimum}")
    return value


def strict_bool(value: Any, field: str) -> bool:
    """``value`` if it is a ``bool`` (never ``1`` or ``"true"``), else a ValidationError."""
    if not isinstance(value, bool):
        raise ValidationError.single(field, STRICT_TYPE_MESSAGES["bool_type"])
    return value


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


_NOT_FINITE = "must be a finite number (not NaN or infinity)"


def is_real_number(value: Any) -> bool:
    """Whether ``value`` is a real number of any type a component may hand over, never a bool.

    ``numpy.int64`` from ``df.amount.sum()``, ``numpy.float32`` and ``Decimal`` from a database
    driver are numbers; ``True`` as a metric is a mistake, not ``1.0`` (numpy's ``bool_`` too).
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    return isinstance(value, numbers.Real | decimal.Decimal)


def check_metric_value(value: Any) -> float:
    """``value`` as a finite ``float``; ``ValueError`` for a bool, a non-number, NaN or infinity."""
    if not is_real_number(value):
        raise ValueError("must be a number (int, float, numpy number or Decimal; not a bool)")
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int beyond the float range; a signalling NaN
        raise ValueError(_NOT_FINITE) from None
    if not math.isfinite(number):
        raise ValueError(_NOT_FINITE)
    return number


def check_json_document(
    value: Any,
    *,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> Any:
    """Check that ``value`` is plain JSON within the size and depth limits.

    Plain JSON means: dict keys are strings, values are ``None``/bool/int/finite float/str/list/
    dict, and no string (key or value) contains a NUL byte or a lone surrogate, which PostgreSQL
    cannot store. Other characters are data. Errors name the place (``at a[0]["k\\u0000"]``),
    never the value. Returns ``value`` unchanged.
    """
    _walk_json(value, depth=1, max_depth=max_depth, path="")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        raise ValueError(f"is {size} bytes serialized; the limit is {max_bytes}")
    return value


def key_label(key: object) -> str:
    """``key`` as an error's field path may show it: a plain word as it is, anything else
    JSON-escaped, so an unknown key holding control or bidi characters cannot rewrite the
    terminal line that prints the error."""
    if isinstance(key, str) and _PLAIN_KEY_RE.fullmatch(key):
        return key
    return json.dumps(key if isinstance(key, str) else repr(key), ensure_ascii=True)


def _key_path(path: str, key: str) -> str:
    # Keys are shown in messages (values never are); one that is not a plain word is quoted with
    # JSON escapes, so a key holding control, bidi or invisible characters cannot rewrite the
    # terminal line that prints the error, nor pass for another key.
    if _PLAIN_KEY_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=True)}]"


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
        if _SURROGATE_RE.search(value):
            raise ValueError(f"contains a lone surrogate (not valid Unicode text){where}")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"has a non-string key{where}")
            # The key is named by its escaped form: PostgreSQL refuses NUL (JSONB's \u0000) and
            # UTF-8 cannot encode surrogates, on every backend alike.
            if "\x00" in key:
                raise ValueError(f"has a key with a NUL byte at {_key_path(path, key)}")
            if _SURROGATE_RE.search(key):
                raise ValueError(f"has a key with a lone surrogate at {_key_path(path, key)}")
            _walk_json(item, depth=depth + 1, max_depth=max_depth, path=_key_path(path, key))
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
#: A metric value: any real number but a bool (see :func:`is_real_number`), stored as a float.
MetricValue = Annotated[float, BeforeValidator(check_metric_value)]
JSONObject = Annotated[dict[str, Any], AfterValidator(check_json_object)]


# -- Pydantic's errors as ours ---------------------------------------------------------------------


def did_you_mean(key: str, candidates: Iterable[str]) -> str:
    """A "did you mean" hint when ``key`` is close to one of ``candidates``, else ``""``."""
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def translate_validation_error(
    error: pydantic.ValidationError,
    *,
    entity: str | None = None,
    prefix: str = "",
    known_keys: Iterable[str] = (),
) -> ValidationError:
    """Our :class:`ValidationError` for a pydantic one: field paths and reasons, never input.

    An unknown top-level key is named as the field, with a "did you mean" hint when it is close
    to one of ``known_keys`` (the model's fields).
    """
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            # The key is the caller's, not a field name: escaped unless it is a plain word.
            *parents, key = item["loc"]
            loc = ".".join([*(str(part) for part in parents), key_label(key)])
            # Input models are flat, so only a top-level key has candidates to hint at.
            hint = did_you_mean(str(key), known_keys) if not parents else ""
            message = f"unknown key{hint}"
        else:
            message = STRICT_TYPE_MESSAGES.get(item["type"], message)
        problems.append(FieldProblem(f"{prefix}{loc}", message))
    return ValidationError(problems, entity=entity)


def validate_input(
    model: type[pydantic.BaseModel],
    data: Any,
    *,
    entity: str,
    context: dict[str, Any] | None = None,
    prefix: str = "",
) -> Any:
    """Validate ``data`` (a dict or an instance of ``model``) with the store's limits.

    Instances are dumped and validated again: they may have been built with default limits or
    with ``model_construct``, which skips validation.
    """
    if isinstance(data, pydantic.BaseModel):
        data = data.model_dump(exclude_unset=True)
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        raise translate_validation_error(
            exc, entity=entity, prefix=prefix, known_keys=model.model_fields
        ) from None
