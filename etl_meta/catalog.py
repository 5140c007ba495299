"""A snapshot of the store's definitions, for orchestrators that build pipelines from them.

Orchestrators build their jobs or DAGs once from a snapshot rather than querying the store while
they run: a run must not break because someone edited a job after the pipeline was loaded, and
workers must not hammer the store. The snapshot carries **masked** configuration only (it ends up
in orchestrator metadata and UIs); code that runs a component asks the store for the real values
of the exact configuration version the snapshot names.

``catalog_revision`` is a short fingerprint of every definition's revision: compare the one a
pipeline was built from with the store's current one to know whether a reload is due. The same
fingerprint keys a per-process cache of snapshots: :func:`take_snapshot` reads the fingerprint
(two small queries) and rebuilds only when it changed, so a cached snapshot is never stale, also
when another process changed the definitions.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col

from etl_meta.components.base import DataclassInfo
from etl_meta.masking import mask_value
from etl_meta.models import (
    ComponentStatus,
    Dataclass,
    DataclassPublic,
    Job,
    JobPublic,
    StrategyType,
)
from etl_meta.store import MetadataStore
from etl_meta.types import utcnow


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ComponentSnapshot(_Frozen):
    """One component as the orchestrator builds it (configuration masked)."""

    name: str
    component_type: str
    status: ComponentStatus
    config_version: int
    configuration: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    description: str | None = None


class JobSnapshot(_Frozen):
    """One job and its live components."""

    name: str
    revision: int
    num_of_retries: int
    file_logging: bool
    strategy_type: StrategyType
    max_concurrency: int | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    components: tuple[ComponentSnapshot, ...] = ()

    @property
    def active_components(self) -> tuple[ComponentSnapshot, ...]:
        """Components that run (``disabled`` ones are skipped, see :func:`runnable_graph`)."""
        return tuple(c for c in self.components if c.status == ComponentStatus.ACTIVE)

    def runnable_graph(self) -> dict[str, tuple[str, ...]]:
        """``{component: upstream components}`` over active components only.

        A disabled component is bridged: its dependants inherit its upstreams, so disabling a
        step in the middle keeps the order of everything around it.
        """
        by_name = {c.name: c for c in self.components}
        active = {c.name for c in self.active_components}

        def upstream_of(name: str, seen: frozenset[str]) -> list[str]:
            found: list[str] = []
            for parent in by_name[name].depends_on:
                if parent in seen or parent not in by_name:
                    continue
                if parent in active:
                    found.append(parent)
                else:
                    found.extend(upstream_of(parent, seen | {parent}))
            return found

        return {
            name: tuple(dict.fromkeys(upstream_of(name, frozenset({name}))))
            for name in by_name
            if name in active
        }

    @property
    def config_versions(self) -> dict[str, int]:
        return {c.name: c.config_version for c in self.active_components}


class DataclassSnapshot(_Frozen):
    name: str
    dataclass_type: str
    version: int
    schema_definition: dict[str, Any]
    validation_rules: dict[str, Any]

    def info(self) -> DataclassInfo:
        return DataclassInfo(
            name=self.name,
            dataclass_type=self.dataclass_type,
            schema_definition=self.schema_definition,
            validation_rules=self.validation_rules,
            version=self.version,
        )


class CatalogSnapshot(_Frozen):
    """Every live job and dataclass, as of ``taken_at``, fingerprinted by ``revision``."""

    revision: str
    taken_at: datetime
    jobs: tuple[JobSnapshot, ...] = ()
    dataclasses: dict[str, DataclassSnapshot] = Field(default_factory=dict)

    def job(self, name: str) -> JobSnapshot:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(f"job {name!r} is not in the catalog snapshot")


def catalog_revision(store: MetadataStore) -> str:
    """A 12-character fingerprint of every job's and dataclass's revision (two small queries)."""
    with store.transaction(readonly=True) as session:
        # Ids and update times too: a revision number alone repeats when a database is rebuilt
        # with the same names, and dataclass_type changes without a new version (only schema
        # and rules are versioned). The fingerprint keys take_snapshot's cache.
        jobs = session.execute(
            sa.select(
                col(Job.name),
                col(Job.id),
                col(Job.revision),
                col(Job.is_archived),
                col(Job.updated_at),
            ).order_by(col(Job.name))
        ).all()
        dataclasses = session.execute(
            sa.select(
                col(Dataclass.name),
                col(Dataclass.id),
                col(Dataclass.version),
                col(Dataclass.dataclass_type),
                col(Dataclass.is_archived),
                col(Dataclass.updated_at),
            ).order_by(col(Dataclass.name))
        ).all()
    digest = hashlib.sha256(repr((list(map(tuple, jobs)), list(map(tuple, dataclasses)))).encode())
    return digest.hexdigest()[:12]


_cache_lock = threading.Lock()
#: ``{database URL: the last snapshot taken from it}`` in this process.
_cache: dict[str, CatalogSnapshot] = {}


def take_snapshot(store: MetadataStore, *, cached: bool = True) -> CatalogSnapshot:
    """Every live job (with components) and dataclass, read in one read transaction.

    With ``cached`` (the default), a snapshot this process took of the same database is reused
    when the catalog's fingerprint has not changed since (checked on every call, two small
    queries), with a fresh ``taken_at``.
    """
    key = store.engine.url.render_as_string(hide_password=True)
    with store.transaction(readonly=True):
        revision = catalog_revision(store)
        with _cache_lock:
            hit = _cache.get(key) if cached else None
        if hit is not None and hit.revision == revision:
            return hit.model_copy(update={"taken_at": utcnow()})
        jobs = store.jobs.list(with_components=True)
        dataclasses = store.dataclasses.list()
    snapshot = _build(revision, jobs, dataclasses)
    with _cache_lock:
        _cache[key] = snapshot
    return snapshot


def _build(
    revision: str, jobs: list[JobPublic], dataclasses: list[DataclassPublic]
) -> CatalogSnapshot:
    return CatalogSnapshot(
        revision=revision,
        taken_at=utcnow(),
        jobs=tuple(
            JobSnapshot(
                name=job.name,
                revision=job.revision,
                num_of_retries=job.num_of_retries,
                file_logging=job.file_logging,
                strategy_type=job.strategy_type,
                max_concurrency=job.max_concurrency,
                description=job.description,
                tags=job.tags,
                components=tuple(
                    ComponentSnapshot(
                        name=c.name,
                        component_type=c.component_type,
                        status=c.status,
                        config_version=c.config_version,
                        configuration=mask_value(c.configuration, component_type=c.component_type),
                        depends_on=tuple(c.depends_on),
                        inputs=tuple(c.inputs),
                        outputs=tuple(c.outputs),
                        description=c.description,
                    )
                    for c in job.components or []
                ),
            )
            for job in jobs
        ),
        dataclasses={
            d.name: DataclassSnapshot(
                name=d.name,
                dataclass_type=d.dataclass_type,
                version=d.version,
                schema_definition=d.schema_definition,
                validation_rules=d.validation_rules,
            )
            for d in dataclasses
        },
    )
