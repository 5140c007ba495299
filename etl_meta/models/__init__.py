"""etl-meta's models: one SQLModel family per entity (Base, table, Create, Update, Public)."""

from etl_meta.models.audit import AuditEvent, AuditEventPublic
from etl_meta.models.base import NAMING_CONVENTION, EtlModel, PublicModel, metadata
from etl_meta.models.component import (
    Component,
    ComponentBase,
    ComponentConfig,
    ComponentConfigPublic,
    ComponentCreate,
    ComponentDataclass,
    ComponentDependency,
    ComponentPublic,
    ComponentUpdate,
)
from etl_meta.models.dataclass_ import (
    Dataclass,
    DataclassCreate,
    DataclassesBase,
    DataclassPublic,
    DataclassUpdate,
)
from etl_meta.models.enums import (
    ComponentStatus,
    DataclassRole,
    ExecutionStatus,
    Orchestrator,
    RunRequestStatus,
    StepStatus,
    StrategyType,
)
from etl_meta.models.execution import (
    ComponentExecution,
    Execution,
    ExecutionPublic,
    ExecutionUpsert,
    StepAttemptPublic,
    StepAttemptUpsert,
)
from etl_meta.models.execution_tag import ExecutionTag, TagSource
from etl_meta.models.job import Job, JobBase, JobCreate, JobPublic, JobTag, JobUpdate, Tag
from etl_meta.models.metric import (
    MetricLatest,
    MetricName,
    MetricPoint,
    MetricPointRow,
    MetricPublic,
    MetricSeries,
    metric_points,
)
from etl_meta.models.relationships import configure as _configure_relationships
from etl_meta.models.retention import MetricRollup, RetentionPolicy, RetentionPolicyPublic
from etl_meta.models.run_request import RunRequest, RunRequestCreate, RunRequestPublic
from etl_meta.models.sync_cursor import SyncCursor, SyncCursorPublic

# Resolve forward references between the Public schemas of different modules.
JobPublic.model_rebuild()
ExecutionPublic.model_rebuild()
_configure_relationships()

__all__ = [
    "NAMING_CONVENTION",
    "AuditEvent",
    "AuditEventPublic",
    "Component",
    "ComponentBase",
    "ComponentConfig",
    "ComponentConfigPublic",
    "ComponentCreate",
    "ComponentDataclass",
    "ComponentDependency",
    "ComponentExecution",
    "ComponentPublic",
    "ComponentStatus",
    "ComponentUpdate",
    "Dataclass",
    "DataclassCreate",
    "DataclassPublic",
    "DataclassRole",
    "DataclassUpdate",
    "DataclassesBase",
    "EtlModel",
    "Execution",
    "ExecutionPublic",
    "ExecutionStatus",
    "ExecutionTag",
    "ExecutionUpsert",
    "Job",
    "JobBase",
    "JobCreate",
    "JobPublic",
    "JobTag",
    "JobUpdate",
    "MetricLatest",
    "MetricName",
    "MetricPoint",
    "MetricPointRow",
    "MetricPublic",
    "MetricRollup",
    "MetricSeries",
    "Orchestrator",
    "PublicModel",
    "RetentionPolicy",
    "RetentionPolicyPublic",
    "RunRequest",
    "RunRequestCreate",
    "RunRequestPublic",
    "RunRequestStatus",
    "StepAttemptPublic",
    "StepAttemptUpsert",
    "StepStatus",
    "StrategyType",
    "SyncCursor",
    "SyncCursorPublic",
    "Tag",
    "TagSource",
    "metadata",
    "metric_points",
]
