"""etl-meta: a metadata store for ETL pipelines that Dagster and Airflow treat as their source
of truth.

Importing ``etl_meta`` loads neither Dagster, Airflow nor pandas.

    >>> from etl_meta import MetadataStore
    >>> store = MetadataStore()  # doctest: +SKIP
"""

from etl_meta.config import Settings, get_settings
from etl_meta.errors import (
    AlreadyExistsError,
    ConflictError,
    EtlMetaError,
    IntegrityError,
    NotFoundError,
    SchemaError,
    SchemaNotInitializedError,
    SchemaOutOfDateError,
    SchemaTooNewError,
    StoreUnavailableError,
    ValidationError,
)
from etl_meta.models import (
    ComponentBase,
    ComponentStatus,
    DataclassesBase,
    ExecutionStatus,
    JobBase,
    Orchestrator,
    RunRequestStatus,
    StepStatus,
    StrategyType,
)
from etl_meta.store import MetadataStore, RecordResult

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "ComponentBase",
    "ComponentStatus",
    "ConflictError",
    "DataclassesBase",
    "EtlMetaError",
    "ExecutionStatus",
    "IntegrityError",
    "JobBase",
    "MetadataStore",
    "NotFoundError",
    "Orchestrator",
    "RecordResult",
    "RunRequestStatus",
    "SchemaError",
    "SchemaNotInitializedError",
    "SchemaOutOfDateError",
    "SchemaTooNewError",
    "Settings",
    "StepStatus",
    "StoreUnavailableError",
    "StrategyType",
    "ValidationError",
    "__version__",
    "get_settings",
]
