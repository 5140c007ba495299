"""The code location of the dagster-celery test: etl-meta's own loader, with dagster-celery's
executor for the stored jobs whose strategy is ``parallel`` — what a user's code location does to
run them on Celery workers (docs/dagster.md). Sequential jobs keep the in-process executor.

The broker and result backend come from ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` in the
environment of the run workers, which the test sets for every process of the deployment.
"""

import dagster as dg
from dagster_celery import celery_executor

from dagster_defs.loader import EtlMetaDefinitionsLoader

CELERY_EXECUTOR = celery_executor.configured(
    {
        "broker": {"env": "CELERY_BROKER_URL"},
        "backend": {"env": "CELERY_RESULT_BACKEND"},
    }
)


@dg.definitions
def defs() -> dg.Definitions:
    return EtlMetaDefinitionsLoader(parallel_executor=CELERY_EXECUTOR).build_defs()
