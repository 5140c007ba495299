"""Make the store match a definitions file, in one transaction, and say what changed.

Order matters because entities refer to each other: with ``prune``, the jobs and dataclasses the
file no longer declares are archived first (see :mod:`etl_meta.definitions._prune`); then
dataclasses (components link to them), then each job with its components (see
:mod:`etl_meta.definitions._components` for the order within a job), then the retention
policies (an override may name a job the file creates). Every store call joins
one ``store.transaction()``, so a refusal anywhere rolls back everything; a dry run does all the
work and then rolls back on purpose, so it reports the exact plan and surfaces the store's own
refusals without writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from etl_meta.definitions import _prune
from etl_meta.definitions._components import sync_components
from etl_meta.definitions._retention import sync_retention
from etl_meta.definitions.contracts import contract_problems
from etl_meta.definitions.errors import DefinitionProblem, DefinitionsError, DocPath, format_path
from etl_meta.definitions.loader import SourceMap
from etl_meta.definitions.plan import Plan
from etl_meta.definitions.spec import DataclassSpec, DefinitionsFile, JobSpec
from etl_meta.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from etl_meta.models import DataclassPublic
from etl_meta.store import MetadataStore

_JOB_FIELDS = ("num_of_retries", "file_logging", "strategy_type", "description", "max_concurrency")
_DATACLASS_FIELDS = ("dataclass_type", "schema_definition", "validation_rules", "description")
#: Store errors that mean "this file asks for something the store refuses".
_REFUSALS = (ValidationError, ConflictError, AlreadyExistsError, NotFoundError)


class _Rollback(Exception):
    """Raised inside the transaction to undo a dry run."""


def _parse_field(field: str) -> DocPath:
    # The store's dotted field paths ("components.2.depends_on") as file paths.
    if not field or field == "?":
        return ()
    return tuple(int(part) if part.isdigit() else part for part in field.split("."))


class StoreErrorReporter:
    """Turns the store's refusals into :class:`DefinitionsError` s positioned in the file."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map

    def problem(self, path: DocPath, message: str) -> DefinitionProblem:
        """A problem at ``path``, positioned when the file's map knows it."""
        position = self.source_map.locate(path)
        line, column = position if position else (None, None)
        return DefinitionProblem(format_path(path), message, self.source_map.source, line, column)

    @contextmanager
    def at(self, path: DocPath) -> Iterator[None]:
        """Report store refusals raised inside as concerning ``path``."""
        try:
            yield
        except _REFUSALS as exc:
            if isinstance(exc, DefinitionsError):
                raise
            raise DefinitionsError(
                self._problems(path, exc), source=self.source_map.source
            ) from exc

    def _problems(self, path: DocPath, exc: Exception) -> list[DefinitionProblem]:
        if isinstance(exc, ValidationError):
            problems = []
            for item in exc.problems:
                where = _parse_field(item.field)
                problems.append(self.problem((*path, *where), item.message))
            return problems
        field = getattr(exc, "field", None)
        sub: DocPath = (field,) if field in ("name", "depends_on", "status") else ()
        return [self.problem((*path, *sub), str(exc))]


class _Applier:
    """One apply: walks the definitions in dependency order, recording the plan."""

    def __init__(
        self, store: MetadataStore, definitions: DefinitionsFile, plan: Plan, *, prune: bool
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.plan = plan
        self.prune = prune
        self.report = StoreErrorReporter(definitions.source_map)

    def run(self) -> None:
        contract = contract_problems(self.definitions, self.store.settings)
        if contract:
            raise DefinitionsError(contract, source=self.report.source_map.source)
        prunes = _prune.find_prunes(self.store, self.definitions) if self.prune else None
        if prunes is not None:
            _prune.check_prunes(self.store, self.definitions, prunes, self.report)
        self._check_dataclass_references()
        if prunes is not None:
            _prune.apply_prunes(self.store, prunes, self.plan)
        for index, dataclass in enumerate(self.definitions.dataclasses):
            self._sync_dataclass(("dataclasses", index), dataclass)
        for index, job in enumerate(self.definitions.jobs):
            self._sync_job(("jobs", index), job)
        if self.definitions.retention is not None:
            # After the jobs: an override may name a job this file creates.
            sync_retention(self.store, self.definitions.retention, self.plan, self.report)

    def _find_dataclass(self, name: str) -> DataclassPublic | None:
        try:
            return self.store.dataclasses.get(name)
        except NotFoundError:
            return None

    def _check_dataclass_references(self) -> None:
        # Checked up front, with the position of each reference, rather than left to the store,
        # which names only the field and stops at the first component.
        declared = {d.name for d in self.definitions.dataclasses}
        exists: dict[str, bool] = {}
        problems = []
        for j_index, job in enumerate(self.definitions.jobs):
            for c_index, component in enumerate(job.components):
                for role in ("inputs", "outputs"):
                    for index, name in enumerate(getattr(component, role)):
                        if name in declared:
                            continue
                        if name not in exists:
                            exists[name] = self._find_dataclass(name) is not None
                        if not exists[name]:
                            path = ("jobs", j_index, "components", c_index, role, index)
                            problems.append(
                                self.report.problem(
                                    path,
                                    f"unknown dataclass {name!r} (declare it under 'dataclasses' "
                                    "or create it first)",
                                )
                            )
        if problems:
            raise DefinitionsError(problems, source=self.report.source_map.source)

    def _sync_dataclass(self, path: DocPath, spec: DataclassSpec) -> None:
        with self.report.at(path):
            current = self._find_dataclass(spec.name)
            if current is None:
                self.store.dataclasses.create(spec.model_dump())
                self.plan.add("dataclass", spec.name, "created")
                return
            changes = {
                field: getattr(spec, field)
                for field in _DATACLASS_FIELDS
                if getattr(current, field) != getattr(spec, field)
            }
            if changes:
                self.store.dataclasses.update(spec.name, changes)
            changed = tuple(changes)
            if current.is_archived:
                # As for jobs: declaring a dataclass means wanting it used.
                self.store.dataclasses.restore(spec.name)
                changed += ("is_archived",)
        self.plan.add("dataclass", spec.name, "updated" if changed else "unchanged", changed)

    def _sync_job(self, path: DocPath, spec: JobSpec) -> None:
        with self.report.at(path):
            exists = self.store.jobs.exists(spec.name)
        if not exists:
            self._create_job(path, spec)
            return
        with self.report.at(path):
            current = self.store.jobs.get(spec.name)
            changes: dict[str, Any] = {
                field: getattr(spec, field)
                for field in _JOB_FIELDS
                if getattr(current, field) != getattr(spec, field)
            }
            if current.tags != spec.tags:
                changes["tags"] = spec.tags
            if changes:
                self.store.jobs.update(spec.name, changes)
            changed = tuple(changes)
            if current.is_archived:
                # Declaring a job means wanting it run: an archived one comes back.
                self.store.jobs.restore(spec.name)
                changed += ("is_archived",)
        self.plan.add("job", spec.name, "updated" if changed else "unchanged", changed)
        # A job declared without a `components:` key leaves its components alone; a present
        # key, even an empty one, is the complete list.
        if "components" in spec.model_fields_set:
            sync_components(self.store, spec, path, self.plan, self.report)

    def _create_job(self, path: DocPath, spec: JobSpec) -> None:
        data = spec.model_dump(exclude={"components"})
        # ``renamed_from`` means nothing for a new job: there is no stored component to rename.
        data["components"] = [
            component.model_dump(exclude={"renamed_from"}) for component in spec.components
        ]
        with self.report.at(path):
            self.store.jobs.create(data)
        self.plan.add("job", spec.name, "created")
        for component in spec.components:
            self.plan.add("component", f"{spec.name}.{component.name}", "created")


def apply_definitions(
    store: MetadataStore,
    definitions: DefinitionsFile,
    *,
    dry_run: bool = False,
    prune: bool = False,
) -> Plan:
    """Create or update the store's dataclasses, jobs and components to match ``definitions``.

    Idempotent: applying the same definitions again changes nothing (no audit events, no revision
    bumps). Components stored for a declared job but missing from its list are archived; jobs and
    dataclasses the file does not mention are left alone unless ``prune``. Archived jobs and
    dataclasses the file declares are restored. A component declared with ``renamed_from`` is
    renamed in place when its old name is stored and its new one is not. A ``retention:``
    section, when present, becomes the complete set of stored retention policies (see
    :mod:`etl_meta.definitions._retention`). Everything happens in one transaction.

    Args:
        store: the store to change.
        definitions: from :func:`~etl_meta.definitions.load_definitions` (positions in errors) or
            built in code.
        dry_run: compute the exact plan, then roll back; the store's refusals still surface.
        prune: also archive the live jobs and dataclasses ``definitions`` does not declare (listed
            first in the plan).

    Raises:
        DefinitionsError: the store refused part of the file, or ``prune`` would archive a
            dataclass that a component staying live uses; nothing was written.
        ValueError: ``dry_run`` inside an open ``store.transaction()`` (it could not roll back
            only its own work).
    """
    if dry_run and store.in_transaction():
        raise ValueError("a dry run cannot join an open store.transaction()")
    plan = Plan(dry_run=dry_run, prune=prune)
    try:
        with store.transaction():
            _Applier(store, definitions, plan, prune=prune).run()
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    return plan
