"""Bring an existing job's components in line with its declared list.

The store checks every intermediate state (no cycles, no dependency on an archived component, no
archiving while a live component depends on it), so the order of the calls matters:

0. Renames (``renamed_from``) first, so every later step sees the stored components under their
   declared names. A rename keeps the component's id, so its edges and links follow it.
1. Existing components, upstreams first: change their fields; where dependencies are *removed*,
   keep only those that stay. Removing edges from an acyclic graph keeps it acyclic, and upstreams
   revived before their dependants are live when a dependant names them.
2. Upstreams first again: create new components with all their dependencies (a new node cannot
   close a cycle) and give existing components the dependencies they *gain*. Every edge now
   present is a declared one, and the declared graph is acyclic.
3. Archive components dropped from the file (and those declared ``archived``), dependants before
   the components they depend on.
"""

from __future__ import annotations

from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

from etl_meta.definitions.errors import DefinitionsError
from etl_meta.models import ComponentPublic, ComponentStatus

if TYPE_CHECKING:
    from etl_meta.definitions.apply import StoreErrorReporter
    from etl_meta.definitions.errors import DocPath
    from etl_meta.definitions.plan import Plan
    from etl_meta.definitions.spec import ComponentSpec, JobSpec
    from etl_meta.store import MetadataStore

#: Changed fields are listed in this order.
_FIELD_ORDER = (
    "component_type",
    "configuration",
    "status",
    "description",
    "depends_on",
    "inputs",
    "outputs",
)
_ARCHIVED = ComponentStatus.ARCHIVED


def _declared_order(specs: list[ComponentSpec]) -> list[str]:
    # Upstreams first; the spec checks already guarantee the graph is acyclic and closed.
    graph = {spec.name: set(spec.depends_on) for spec in specs}
    return list(TopologicalSorter(graph).static_order())


class _JobSync:
    def __init__(
        self,
        store: MetadataStore,
        job: JobSpec,
        job_path: DocPath,
        report: StoreErrorReporter,
    ) -> None:
        self.store = store
        self.job = job.name
        self.job_path = job_path
        self.report = report
        self.specs = {spec.name: (index, spec) for index, spec in enumerate(job.components)}
        self.order = _declared_order(job.components)
        self.current = {c.name: c for c in store.components.list(job.name, include_archived=True)}
        self.changed: dict[str, set[str]] = {}
        self.created: set[str] = set()
        self.gained: dict[str, list[str]] = {}
        self.to_archive: set[str] = set()
        self.renamed: dict[str, str] = {}

    def rename(self) -> None:
        """Rename stored components in place where the file says ``renamed_from``.

        Only when the old name is stored and the new one is not: once renamed, the old name is
        gone and ``renamed_from`` is ignored, so applying the same file again changes nothing.
        """
        for name, (_index, spec) in self.specs.items():
            old = spec.renamed_from
            if old is None or old not in self.current:
                continue
            if name in self.current:
                # Both exist (e.g. an older file created ``old`` again): merging two histories is
                # not possible, and archiving one silently would split the history the rename
                # was meant to keep.
                problem = self.report.problem(
                    self.path(name, "renamed_from"),
                    f"cannot rename {old!r} to {name!r}: job {self.job!r} already has both "
                    "(remove 'renamed_from' to keep them apart)",
                )
                raise DefinitionsError([problem], source=self.report.source_map.source)
            with self.report.at(self.path(name)):
                self.store.components.rename(self.job, old, name)
            self.renamed[name] = old
        if self.renamed:
            # Upstream names in ``depends_on`` changed too: read the stored state again.
            components = self.store.components.list(self.job, include_archived=True)
            self.current = {c.name: c for c in components}

    def path(self, name: str, *field: str) -> DocPath:
        return (*self.job_path, "components", self.specs[name][0], *field)

    def update_existing(self, name: str, spec: ComponentSpec, current: ComponentPublic) -> None:
        changes: dict[str, Any] = {}
        changed: set[str] = set()
        for field in ("component_type", "description"):
            if getattr(current, field) != getattr(spec, field):
                changes[field] = getattr(spec, field)
        # ComponentPublic masks secrets; the store compares with the stored plaintext itself, so
        # planning an apply neither reveals secrets nor writes a ``decrypt`` audit event.
        if not self.store.components.configuration_matches(self.job, name, spec.configuration):
            changes["configuration"] = spec.configuration
        if spec.status != current.status:
            if spec.status == _ARCHIVED:
                self.to_archive.add(name)
            else:
                changes["status"] = spec.status
        for field in ("inputs", "outputs"):
            if set(getattr(current, field)) != set(getattr(spec, field)):
                changes[field] = sorted(set(getattr(spec, field)))
        old, new = set(current.depends_on), set(spec.depends_on)
        if old != new:
            changed.add("depends_on")
            if old - new:
                changes["depends_on"] = sorted(old & new) if new - old else sorted(new)
            if new - old:
                self.gained[name] = sorted(new)
        if changes:
            with self.report.at(self.path(name)):
                self.store.components.update(self.job, name, changes)
        self.changed[name] = changed | changes.keys()

    def create_or_extend(self, name: str, spec: ComponentSpec) -> None:
        if name not in self.current:
            with self.report.at(self.path(name)):
                self.store.components.create(self.job, spec.model_dump(exclude={"renamed_from"}))
            self.created.add(name)
        elif name in self.gained:
            with self.report.at(self.path(name)):
                self.store.components.update(self.job, name, {"depends_on": self.gained[name]})

    def archive_order(self) -> list[str]:
        """Dependants before their upstreams, from the edges stored now."""
        stored = {c.name: c for c in self.store.components.list(self.job, include_archived=True)}
        graph = {
            name: {up for up in stored[name].depends_on if up in self.to_archive}
            for name in self.to_archive
        }
        return list(reversed(list(TopologicalSorter(graph).static_order())))

    def archive(self, name: str) -> None:
        path = self.path(name, "status") if name in self.specs else self.job_path
        with self.report.at(path):
            self.store.components.archive(self.job, name)


def sync_components(
    store: MetadataStore,
    job: JobSpec,
    job_path: DocPath,
    plan: Plan,
    report: StoreErrorReporter,
) -> None:
    """Create, update and archive ``job``'s components to match its declared list.

    Adds one plan line per declared component (file order), then one per archived component that
    the file no longer declares.
    """
    sync = _JobSync(store, job, job_path, report)
    sync.rename()
    for name in sync.order:
        if name in sync.current:
            sync.update_existing(name, sync.specs[name][1], sync.current[name])
    for name in sync.order:
        sync.create_or_extend(name, sync.specs[name][1])
    sync.to_archive |= {
        name
        for name, component in sync.current.items()
        if name not in sync.specs and component.status != _ARCHIVED
    }
    archived = sync.archive_order() if sync.to_archive else []
    for name in archived:
        sync.archive(name)

    for spec in job.components:
        qualified = f"{job.name}.{spec.name}"
        if spec.name in sync.created:
            plan.add("component", qualified, "created")
            continue
        fields = tuple(f for f in _FIELD_ORDER if f in sync.changed.get(spec.name, ()))
        if spec.name in sync.renamed:
            if spec.name in sync.to_archive:
                fields = tuple(f for f in _FIELD_ORDER if f in {*fields, "status"})
            old = sync.renamed[spec.name]
            plan.add("component", qualified, "renamed", fields, renamed_from=old)
        elif spec.name in sync.to_archive:
            plan.add("component", qualified, "archived", fields)
        else:
            plan.add("component", qualified, "updated" if fields else "unchanged", fields)
    for name in archived:
        if name not in sync.specs:
            plan.add("component", f"{job.name}.{name}", "archived")
