"""The store facade: :class:`MetadataStore` and what its methods return."""

from etl_meta.store.core import MetadataStore
from etl_meta.store.metrics import RecordResult

__all__ = ["MetadataStore", "RecordResult"]
