"""Relationships between definitions and runs, declared once every table class exists.

A job's executions can run into millions of rows, so that collection
is ``write_only``: iterating them by accident cannot load everything; callers query them with
``.select()``. ``Job.latest_execution`` is a read-only many-to-one through a correlated subquery.
"""

import sqlalchemy as sa
from sqlalchemy.orm import relationship
from sqlmodel import col

from etl_meta.models.component import Component
from etl_meta.models.execution import ComponentExecution, Execution
from etl_meta.models.job import Job


def _latest_execution_join() -> sa.ColumnElement[bool]:
    newest = (
        sa.select(sa.func.max(col(Execution.id)))
        .where(col(Execution.job_id) == Job.id)
        .correlate(Job)
        .scalar_subquery()
    )
    return sa.and_(col(Execution.job_id) == Job.id, col(Execution.id) == newest)


def configure() -> None:
    """Add the relationships to the mappers (idempotent)."""
    job = sa.inspect(Job)
    if job.has_property("executions"):
        return
    job.add_property(
        "executions",
        relationship(
            Execution, lazy="write_only", order_by=col(Execution.id).desc(), viewonly=True
        ),
    )
    job.add_property(
        "latest_execution",
        relationship(Execution, primaryjoin=_latest_execution_join, viewonly=True, uselist=False),
    )
    execution = sa.inspect(Execution)
    execution.add_property("job", relationship(Job, viewonly=True))
    execution.add_property(
        "attempts",
        relationship(
            ComponentExecution,
            order_by=(col(ComponentExecution.component_id), col(ComponentExecution.attempt)),
            viewonly=True,
        ),
    )
    sa.inspect(ComponentExecution).add_property("component", relationship(Component, viewonly=True))
