"""The ``etl_meta`` code location (``workspace.yaml`` loads this module). Wiring only."""

import dagster as dg

from dagster_defs.loader import EtlMetaDefinitionsLoader


@dg.definitions
def defs() -> dg.Definitions:
    return EtlMetaDefinitionsLoader().build_defs()
