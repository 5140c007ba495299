"""``store.executions.tag`` and ``untag``: a person's run tags (see ``docs/store.md``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from etl_meta.access import Role, requires
from etl_meta.models import Execution, ExecutionPublic
from etl_meta.models.execution_tag import RunTagsRemove, RunTagsSet
from etl_meta.repository import run_tags as tags_repo
from etl_meta.run_tags import check_user_tags
from etl_meta.store._base import record_change
from etl_meta.store._public import run_key

if TYPE_CHECKING:
    from etl_meta.store._base import StoreAPI

    _Base = StoreAPI
else:
    _Base = object


class RunTagsMixin(_Base):
    """The tag methods of :class:`~etl_meta.store.executions.ExecutionsAPI`."""

    @requires(Role.WRITER)
    def tag(self, ref: str | int, tags: Mapping[str, str]) -> ExecutionPublic:
        """Set a person's tags on the run ``ref`` (the store's id or a run id, as in
        :meth:`resolve`); returns the run with all its tags.

        A person's tag overrides the orchestrator's value of the same key, and the orchestrator's
        later replays leave it alone. Setting a tag to the value it has changes nothing (not even
        the audit trail). A key or value that looks like a secret is refused: tags are shown in
        clear to everyone who reads runs.
        """
        given = self._validate(RunTagsSet, {"tags": tags}, entity="execution").tags
        check_user_tags(given)
        return self._change_tags(ref, lambda s, r: tags_repo.set_user_tags(s, r.id, given))

    @requires(Role.ADMIN)
    def untag(self, ref: str | int, keys: Iterable[str]) -> ExecutionPublic:
        """Remove a person's tags from the run ``ref``; a key it does not carry is ignored.

        An orchestrator's tag cannot be removed (its next replay would write it again) and is
        refused with :class:`ConflictError`; overwrite it with :meth:`tag` instead.
        """
        names = self._validate(RunTagsRemove, {"remove": keys}, entity="execution").remove
        return self._change_tags(ref, lambda s, r: tags_repo.remove_user_tags(s, r.id, names))

    def _change_tags(
        self, ref: str | int, change: Callable[[Session, Execution], tags_repo.TagChanges]
    ) -> ExecutionPublic:
        with self._tx() as session:
            row = self._resolve_row(session, ref, for_update=True)
            changed = change(session, row)
            if changed:
                before, after = tag_sides(changed)
                record_change(
                    self._store,
                    session,
                    action="tag",
                    entity_type="execution",
                    entity_key=run_key(row),
                    entity_id=row.id,
                    before={"tags": before},
                    after={"tags": after},
                )
            return self._public(session, row, None, with_steps=False)

    if TYPE_CHECKING:  # provided by ExecutionsAPI

        def _resolve_row(
            self, session: Session, ref: str | int, *, for_update: bool = False
        ) -> Execution: ...

        def _public(
            self, session: Session, row: Execution, job_name: str | None, *, with_steps: bool
        ) -> ExecutionPublic: ...


def tag_sides(changes: tags_repo.TagChanges) -> tuple[dict[str, Any], dict[str, Any]]:
    """``({key: old}, {key: new})`` of changed tags (``None`` where absent), for the audit."""
    return (
        {key: old for key, (old, _new) in changes.items()},
        {key: new for key, (_old, new) in changes.items()},
    )
