"""The Dagster code location ``etl_meta``: jobs built from the store, and the store kept in sync.

``workspace.yaml`` loads :mod:`dagster_defs.definitions`. Nothing in :mod:`etl_meta` imports this
package; it imports :mod:`etl_meta`.
"""
