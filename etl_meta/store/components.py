"""``store.components``: the steps of a job, their configuration versions and dependencies."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from etl_meta.access import Role, requires
from etl_meta.components.problems import check_component, component_problems
from etl_meta.errors import AlreadyExistsError, NotFoundError, ValidationError
from etl_meta.models import (
    Component,
    ComponentConfigPublic,
    ComponentCreate,
    ComponentPublic,
    ComponentStatus,
    ComponentUpdate,
    Job,
)
from etl_meta.repository import components as repo
from etl_meta.repository import jobs as jobs_repo
from etl_meta.secrets import SecretDecryptError
from etl_meta.store import _component_graph as links
from etl_meta.store import _rename
from etl_meta.store._base import StoreAPI, diff, record_change, relative_paths
from etl_meta.store._public import jsonable
from etl_meta.types import utcnow

if TYPE_CHECKING:
    from etl_meta.store.core import MetadataStore

_COMPONENT_FIELDS = ("component_type", "status", "description")


class ComponentsAPI(StoreAPI):
    """Components belong to one job; names are unique within it and identifier-safe."""

    namespace = "components"

    @requires(Role.ADMIN)
    def create(self, job: str, data: ComponentCreate | Mapping[str, Any]) -> ComponentPublic:
        """Add a component to ``job``; ``depends_on`` names components already in the job."""
        definition: ComponentCreate = self._validate(ComponentCreate, data, entity="component")
        with self._tx() as session:
            job_row = jobs_repo.get_job(session, job, for_update=True)
            (created,) = create_components(
                self._store, session, job_row, [definition], field_prefix=False
            )
            return repo.load_component(session, created, job_name=job_row.name)

    @requires(Role.READER)
    def get(self, job: str, name: str) -> ComponentPublic:
        """One component; raises :class:`~etl_meta.errors.NotFoundError`."""
        with self._tx(readonly=True) as session:
            job_row = jobs_repo.get_job(session, job)
            component = repo.get_component(session, job_row.id, name, job_name=job)
            return repo.load_component(session, component, job_name=job_row.name)

    @requires(Role.READER)
    def list(self, job: str, *, include_archived: bool = False) -> list[ComponentPublic]:
        """The job's components in creation order."""
        with self._tx(readonly=True) as session:
            job_row = jobs_repo.get_job(session, job)
            loaded = repo.load_components(
                session, {job_row.id: job_row.name}, include_archived=include_archived
            )
            return loaded.get(job_row.id, [])

    @requires(Role.ADMIN)
    def update(
        self, job: str, name: str, data: ComponentUpdate | Mapping[str, Any]
    ) -> ComponentPublic:
        """Change the fields set in ``data``.

        A different ``configuration`` is stored as a new version (the old one stays in the
        history); setting the same one again changes nothing. Any real change bumps the job's
        revision.
        """
        update: ComponentUpdate = self._validate(ComponentUpdate, data, entity="component")
        changes = update.model_dump(exclude_unset=True)
        with self._tx() as session:
            job_row = jobs_repo.get_job(session, job, for_update=True)
            component = repo.get_component(session, job_row.id, name, job_name=job)
            changed = self._apply_update(session, job_row, component, changes)
            if changed:
                jobs_repo.touch_job(job_row)
            return repo.load_component(session, component, job_name=job_row.name)

    def _apply_update(
        self, session: Session, job: Job, component: Component, changes: dict[str, Any]
    ) -> bool:
        self._check_contract(component, changes)
        before = jsonable(component.model_dump(include=set(_COMPONENT_FIELDS)))
        for field in _COMPONENT_FIELDS:
            if field in changes:
                setattr(component, field, changes[field])
        after = jsonable(component.model_dump(include=set(_COMPONENT_FIELDS)))
        before_diff, after_diff = diff(before, after)
        if after_diff.get("status") == ComponentStatus.ARCHIVED:
            links.refuse_if_depended_on(session, job, component)
        if "configuration" in changes and not self._same_configuration(
            component, changes["configuration"]
        ):
            encrypted = self._store.cipher.encrypt_document(
                changes["configuration"],
                component_type=component.component_type,
                entity="component",
            )
            before_diff["configuration"] = component.configuration
            before_diff["config_version"] = component.config_version
            repo.add_config_version(session, component, encrypted, actor=self._store.actor)
            after_diff["configuration"] = component.configuration
            after_diff["config_version"] = component.config_version
        deps_before = repo.dependency_names(session, [component.id])[component.id]
        links_before = repo.dataclass_links(session, [component.id])[component.id]
        if changes.get("depends_on") is not None:
            by_name = repo.components_by_name(session, job.id)
            links.replace_dependencies(session, job, component, changes["depends_on"], by_name)
            links.check_acyclic(session, job)
        if changes.get("inputs") is not None or changes.get("outputs") is not None:
            links.replace_links(session, component, changes.get("inputs"), changes.get("outputs"))
        deps_after = repo.dependency_names(session, [component.id])[component.id]
        links_after = repo.dataclass_links(session, [component.id])[component.id]
        if deps_after != deps_before:
            before_diff["depends_on"], after_diff["depends_on"] = deps_before, deps_after
        if jsonable(links_after) != jsonable(links_before):
            before_diff["dataclasses"] = jsonable(links_before)
            after_diff["dataclasses"] = jsonable(links_after)
        if not after_diff:
            return False
        component.updated_at = utcnow()
        record_change(
            self._store,
            session,
            action=_update_action(before_diff, after_diff),
            entity_type="component",
            entity_key=f"{job.name}.{component.name}",
            entity_id=component.id,
            before=before_diff,
            after=after_diff,
            component_type=component.component_type,
        )
        session.flush()
        return True

    def _check_contract(self, component: Component, changes: dict[str, Any]) -> None:
        """Refuse an update whose type and configuration, taken together, break the contract."""
        if "configuration" not in changes and "component_type" not in changes:
            return
        component_type = changes.get("component_type", component.component_type)
        configuration = changes.get("configuration")
        if configuration is None:
            # A new type for the stored configuration: check its plaintext (never shown).
            configuration = self._store.cipher.decrypt_document(
                component.configuration, component_type=component.component_type
            )
        check_component(self._store.settings, component_type, configuration)

    def _same_configuration(self, component: Component, configuration: dict[str, Any]) -> bool:
        # Compare plaintext: Fernet tokens differ on every encryption, so comparing stored
        # ciphertext would make every re-apply of the same file a new version.
        try:
            current = self._store.cipher.decrypt_document(
                component.configuration, component_type=component.component_type
            )
        except SecretDecryptError:
            return False  # cannot tell: store the new version (it is encrypted or fails closed)
        return bool(current == configuration)

    @requires(Role.ADMIN)
    def set_dependencies(self, job: str, name: str, depends_on: Iterable[str]) -> ComponentPublic:
        """Make ``name`` run after exactly the components in ``depends_on``."""
        return self.update(job, name, {"depends_on": list(depends_on)})

    @requires(Role.ADMIN)
    def archive(self, job: str, name: str) -> ComponentPublic:
        """Retire a component; refused while another live component depends on it."""
        return self.update(job, name, {"status": ComponentStatus.ARCHIVED})

    @requires(Role.ADMIN)
    def rename(self, job: str, old: str, new: str) -> ComponentPublic:
        """Rename a component in place: its id, configuration history, runs and metrics stay.

        Dependencies and dataclass links follow (they refer to the id). Audited as ``rename``
        with the old and new names; bumps the job's revision. Renaming to the current name
        changes nothing.

        Raises:
            ValidationError: ``new`` is not a valid component name.
            NotFoundError: the job or its component ``old`` does not exist.
            AlreadyExistsError: the job already has a component ``new`` (archived ones too).
        """
        target = self._validate(_rename.ComponentRename, {"name": new}, entity="component")
        with self._tx() as session:
            job_row = jobs_repo.get_job(session, job, for_update=True)
            component = _rename.rename_component(self._store, session, job_row, old, target.name)
            return repo.load_component(session, component, job_name=job_row.name)

    @requires(Role.WRITER)
    def configuration(
        self, job: str, name: str, *, version: int | None = None, strict: bool = True
    ) -> dict[str, Any]:
        """The component's configuration, **unmasked** and decrypted, for the code that runs it.

        Everything else receives masked values; call this only where the values are used. A
        secret that cannot be decrypted (no key, or no matching key) raises
        :class:`~etl_meta.secrets.SecretDecryptError` naming the field; with ``strict=False`` it
        reads as ``***`` and a warning is logged instead.

        Reading a secret is audited: when any value was decrypted, an event with action
        ``decrypt`` names the actor, the component, the version and the field paths (never a
        value), in its own transaction after the read.
        """
        decrypted: list[str] = []
        prefix = f"{job}.{name}.configuration"
        with self._tx(readonly=True) as session:
            component, stored_version, stored = self._stored_configuration(
                session, job, name, version
            )
            configuration = dict(
                self._store.cipher.decrypt_document(
                    stored,
                    component_type=component.component_type,
                    field=prefix,
                    strict=strict,
                    decrypted=decrypted,
                )
            )
        if decrypted:
            self._audit_decrypt(
                entity_type="component",
                entity_key=f"{job}.{name}",
                entity_id=component.id,
                after={"version": stored_version, "fields": relative_paths(decrypted, prefix)},
            )
        return configuration

    @requires(Role.ADMIN)
    def configuration_matches(self, job: str, name: str, configuration: Mapping[str, Any]) -> bool:
        """Whether the current configuration equals ``configuration`` (secrets compared too).

        For tools that reconcile definitions (``etl-meta apply``): it compares plaintext inside
        the store, so nothing is revealed and no ``decrypt`` event is written. A secret that
        cannot be decrypted compares unequal.
        """
        with self._tx(readonly=True) as session:
            job_row = jobs_repo.get_job(session, job)
            component = repo.get_component(session, job_row.id, name, job_name=job)
            return self._same_configuration(component, dict(configuration))

    def _stored_configuration(
        self, session: Session, job: str, name: str, version: int | None
    ) -> tuple[Component, int, dict[str, Any]]:
        job_row = jobs_repo.get_job(session, job)
        component = repo.get_component(session, job_row.id, name, job_name=job)
        if version is None or version == component.config_version:
            return component, component.config_version, component.configuration
        stored = repo.find_config_version(session, component.id, version)
        if stored is None:
            raise NotFoundError("component_config", f"{job}.{name}@{version}")
        return component, version, stored.configuration

    @requires(Role.READER)
    # ``builtins.list`` in signatures from here on: in this class, ``list`` is the method above.
    def config_history(self, job: str, name: str) -> builtins.list[ComponentConfigPublic]:
        """Every configuration version of the component, oldest first (masked)."""
        with self._tx(readonly=True) as session:
            job_row = jobs_repo.get_job(session, job)
            component = repo.get_component(session, job_row.id, name, job_name=job)
            return [
                ComponentConfigPublic.model_validate(
                    {**row.model_dump(), "component_type": component.component_type}
                )
                for row in repo.config_history(session, component.id)
            ]

    @requires(Role.READER)
    def graph(self, job: str) -> dict[str, builtins.list[str]]:
        """``{component: [upstream components]}`` for live components, in topological order."""
        components = [c for c in self.list(job) if c.status != ComponentStatus.ARCHIVED]
        upstream = {c.name: list(c.depends_on) for c in components}
        order = list(TopologicalSorter(upstream).static_order())
        return {name: upstream[name] for name in order if name in upstream}


def _update_action(before: dict[str, Any], after: dict[str, Any]) -> str:
    """``archive``/``restore`` when the update moves the status into or out of ``archived``,
    as ``store.jobs`` and ``store.dataclasses`` name theirs; ``update`` otherwise."""
    if after.get("status") == ComponentStatus.ARCHIVED:
        return "archive"
    if before.get("status") == ComponentStatus.ARCHIVED:
        return "restore"
    return "update"


def create_components(
    store: MetadataStore,
    session: Session,
    job: Job,
    definitions: Sequence[ComponentCreate],
    *,
    touch_job: bool = True,
    field_prefix: bool = True,
) -> list[Component]:
    """Create ``definitions`` (validated) in ``job``, in ``session``'s transaction, audited.

    ``depends_on`` may name components created in the same call: ``store.jobs.create`` creates a
    job's components with it (``touch_job=False``: they are part of its first revision), and
    ``store.components.create`` one at a time.
    """
    # Errors name ``components.<i>.<field>`` when the components came with a job, so callers
    # can tell them from the job's own fields; a single ``create`` names the bare field.
    problems = [
        problem
        for index, definition in enumerate(definitions)
        for problem in component_problems(
            store.settings,
            definition.component_type,
            definition.configuration,
            prefix=f"components.{index}." if field_prefix else "",
        )
    ]
    if problems:
        raise ValidationError(problems, entity="component")
    existing = repo.components_by_name(session, job.id)
    seen: set[str] = set()
    for definition in definitions:
        if definition.name in existing or definition.name in seen:
            raise AlreadyExistsError("component", f"{job.name}.{definition.name}")
        seen.add(definition.name)
    # Encrypt before writing anything: no key for a secret fails the whole call closed.
    encrypted = [
        store.cipher.encrypt_document(
            definition.configuration,
            component_type=definition.component_type,
            field=f"components.{index}.configuration" if field_prefix else "configuration",
            entity="component",
        )
        for index, definition in enumerate(definitions)
    ]
    created = []
    for definition, configuration in zip(definitions, encrypted, strict=True):
        component = Component.model_validate(
            {
                **definition.model_dump(exclude={"depends_on", "inputs", "outputs"}),
                "job_id": job.id,
            }
        )
        session.add(component)
        session.flush()
        repo.add_config_version(session, component, configuration, actor=store.actor)
        created.append(component)
        record_change(
            store,
            session,
            action="create",
            entity_type="component",
            entity_key=f"{job.name}.{component.name}",
            entity_id=component.id,
            after=jsonable(component.model_dump(exclude={"id"})),
            component_type=component.component_type,
        )
    by_name = repo.components_by_name(session, job.id)
    for index, (component, definition) in enumerate(zip(created, definitions, strict=True)):
        prefix = f"components.{index}." if field_prefix else ""
        links.replace_dependencies(session, job, component, definition.depends_on, by_name, prefix)
        links.replace_links(session, component, definition.inputs, definition.outputs, prefix)
    links.check_acyclic(session, job)
    if touch_job:
        jobs_repo.touch_job(job)
    return created
