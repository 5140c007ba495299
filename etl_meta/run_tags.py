"""Run tags as they enter the store: secrets masked or refused, orchestrators' tags made storable.

A tag is shown in clear to everyone who may read runs (``runs show``, ``v_run_tag``), so no
secret may be stored in one. What an orchestrator reports cannot be refused (the run must still be
recorded): its secrets are masked and what no tag can hold is dropped or cut. What a person sets
is checked and refused with the reason instead (:func:`check_user_tags`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from etl_meta.errors import FieldProblem, ValidationError
from etl_meta.masking import MASK, is_sensitive_key, looks_encrypted, mask_url
from etl_meta.models.execution_tag import (
    MAX_RUN_TAGS,
    RUN_TAG_VALUE_MAX,
    check_run_tag_key,
)
from etl_meta.validation import clean_text


def _sensitive(key: str) -> bool:
    # Each part on its own: ``conf.db_password`` is secret, ``conf.author`` is not (``author``
    # is one of the known harmless keys only as a whole key).
    return any(is_sensitive_key(part) for part in re.split(r"[./]", key) if part)


def _masked(key: str, value: str) -> str:
    """``value`` as it may be stored under ``key``: whole or URL-password masked if secret."""
    if _sensitive(key) or looks_encrypted(value):
        return MASK
    if "://" in value:
        url = mask_url(value)
        if url is not None:
            return url
        if "@" in value:  # a URL that cannot be read part by part may still hold a password
            return MASK
    return value


def mask_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Validated tags with every secret masked (a sensitive key, a URL's password)."""
    return {key: _masked(key, tags[key]) for key in sorted(tags)}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


# Keys typed Any: a mapping's key type is invariant, and callers hand dict[str, ...] as often as
# anything else; keys that are not strings are left out below.
def orchestrator_tags(raw: Mapping[Any, object]) -> dict[str, str]:
    """Tags an orchestrator reported, made storable without refusing any run.

    A key that is not a valid tag key is left out, a value that is not a string is written as JSON,
    control characters are removed, a long value is cut with ``…``, secrets are masked, and past
    :data:`~etl_meta.models.execution_tag.MAX_RUN_TAGS` keys (in key order) the rest are left out.
    """
    tags: dict[str, str] = {}
    for key in sorted(k for k in raw if isinstance(k, str)):
        try:
            check_run_tag_key(key)
        except ValueError:
            continue
        value = raw[key]
        if value is None:
            continue
        tags[key] = _masked(key, clean_text(_text(value), max_chars=RUN_TAG_VALUE_MAX))
        if len(tags) == MAX_RUN_TAGS:
            break
    return tags


def check_user_tags(tags: Mapping[str, str]) -> None:
    """Refuse a person's tag that would store a secret in clear, naming each one."""
    problems = [
        FieldProblem(
            f"tags.{key}",
            "looks like a secret; run tags are shown to everyone who reads runs, keep secrets out",
        )
        for key, value in tags.items()
        if _masked(key, value) != value
    ]
    if problems:
        raise ValidationError(problems, entity="execution")
