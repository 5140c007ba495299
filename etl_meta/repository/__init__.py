"""Query functions: ``(session, *, ...)``, one module per entity.

They flush but never commit, so any number of calls share the caller's transaction. ``get_*``
raises :class:`~etl_meta.errors.NotFoundError`; ``find_*`` returns ``None``.
"""
