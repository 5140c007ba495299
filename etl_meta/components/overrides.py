"""Run-time overrides: an orchestrator's run config merged into a component's stored configuration.

Dagster's launch config (``ops.<component>.config``), Airflow's DAG-run ``conf`` and
``store.run_requests`` carry overrides. Plain values override; secrets never: an override may
only echo a secret as it is shown (``***``), which means "the stored value".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etl_meta.errors import FieldProblem, ValidationError
from etl_meta.masking import (
    ENCRYPTED_PREFIX,
    MASK,
    SECRET_OVERRIDE_MESSAGE,
    is_sensitive_key,
    overridden_secrets,
    secret_rules,
)


def resolve_configuration(
    stored: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    component_type: str | None = None,
) -> dict:
    """``stored`` with ``overrides`` merged in depth; raises if an override changes a secret.

    A secret (a field ``component_type``'s contract declares ``SecretText``/``SecretURL``, or a
    key sensitive by name, at any depth) may only be echoed back as shown: ``***``, or for a
    URL secret the stored URL masked (``postgresql://etl:***@warehouse/db``, what Dagster's
    Launchpad and Airflow's exported snapshot show). An echo means "the stored value"; with
    nothing stored there it is dropped, so the literal mask never reaches a component. Any
    other override of a secret raises :class:`~etl_meta.errors.ValidationError` naming each
    field (``configuration.password``): secrets are stored with ``etl-meta apply``, never
    passed through an orchestrator's run config, and a URL keeping ``***`` as its password but
    naming another host would send the stored password there. ``component_type=None`` (type
    unknown) counts every key any type declares secret.
    """
    problems = [
        FieldProblem(f"configuration.{path}", SECRET_OVERRIDE_MESSAGE)
        for path in overridden_secrets(stored, overrides, component_type=component_type)
    ]
    if problems:
        raise ValidationError(problems, entity=f"{component_type or 'component'} overrides")
    keys, _urls = secret_rules(component_type)
    return _merge(stored, overrides, keys)


def _merge(stored: Mapping[str, Any], overrides: Mapping[str, Any], keys: frozenset[str]) -> dict:
    merged = dict(stored)
    for key, value in overrides.items():
        if _is_masked(value) or (isinstance(key, str) and is_sensitive_key(key, keys)):
            # A masked value, stored ciphertext echoed back, or (checked above) the echo of a
            # secret: keep the (decrypted) stored value, or nothing when none is stored.
            continue
        merged[key] = _resolve_value(stored.get(key), value, keys)
    return merged


def _is_masked(value: Any) -> bool:
    return value == MASK or (isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX))


def _resolve_value(stored: Any, override: Any, keys: frozenset[str]) -> Any:
    # Orchestrators echo the whole masked configuration back (Dagster's default run config,
    # Airflow's exported snapshot), lists included: a secret inside a list item
    # (``targets: [{api_key: ***}]``) must resolve to the stored value like any other, item by
    # item, or the component would receive the literal mask.
    if isinstance(override, Mapping):
        return _merge(stored if isinstance(stored, Mapping) else {}, override, keys)
    if isinstance(override, list | tuple):
        base = stored if isinstance(stored, list | tuple) else []
        resolved = []
        for index, item in enumerate(override):
            if _is_masked(item):
                if index < len(base):
                    resolved.append(base[index])
                continue  # nothing stored there: drop the mask rather than pass it on
            resolved.append(_resolve_value(base[index] if index < len(base) else None, item, keys))
        return resolved
    return override
