"""Shared by the definitions tests: the example pipeline as editable data, and applying it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from etl_meta import MetadataStore
from etl_meta.definitions import Plan, apply_definitions, load_definitions
from etl_meta.definitions.loader import load_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "pipeline.yaml"
EXAMPLE_SECRET = "change-me"

_example_data, _ = load_yaml(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))


def example() -> dict[str, Any]:
    """The example pipeline as plain data, a fresh copy to edit."""
    return copy.deepcopy(_example_data)


def dump(data: dict[str, Any]) -> str:
    """Definitions data as YAML text."""
    return yaml.safe_dump(data, sort_keys=False)


def job(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The job called ``name`` in definitions data."""
    return next(j for j in data["jobs"] if j["name"] == name)


def component(data: dict[str, Any], job_name: str, name: str) -> dict[str, Any]:
    """The component ``name`` of job ``job_name`` in definitions data."""
    return next(c for c in job(data, job_name)["components"] if c["name"] == name)


def remove_component(data: dict[str, Any], job_name: str, name: str) -> None:
    """Drop a component from definitions data."""
    found = job(data, job_name)
    found["components"] = [c for c in found["components"] if c["name"] != name]


def apply(store: MetadataStore, data: dict[str, Any] | str, *, dry_run: bool = False) -> Plan:
    """Load definitions (data or YAML text) the way a file is loaded, and apply them."""
    text = data if isinstance(data, str) else dump(data)
    return apply_definitions(store, load_definitions(text), dry_run=dry_run)


def actions(plan: Plan) -> dict[str, str]:
    """``{name: action}`` for every plan line (component names are ``job.component``)."""
    return {item.name: item.action for item in plan.items}


def audit_count(store: MetadataStore) -> int:
    """How many audit events the store holds."""
    return len(store.audit.list(limit=100_000))
