"""What applying a definitions file did (or, in a dry run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["dataclass", "job", "component", "retention"]
Action = Literal["created", "updated", "renamed", "unchanged", "archived", "removed"]

#: Actions in the order summaries list them.
ACTIONS: tuple[Action, ...] = ("created", "updated", "renamed", "archived", "removed", "unchanged")
#: Listed in counts and summaries only when the plan has one: files without renames or removed
#: retention policies read (and their JSON parses) as before those existed.
_OPTIONAL_ACTIONS = frozenset({"renamed", "removed"})


@dataclass(frozen=True)
class PlanItem:
    """One entity and what happened to it.

    ``name`` is ``job.component`` for components. ``changed_fields`` names the fields an update
    changed (never their values: configuration may hold secrets). ``renamed_from`` is the old
    name of a ``renamed`` component (its other changes are in ``changed_fields``).
    """

    kind: Kind
    name: str
    action: Action
    changed_fields: tuple[str, ...] = ()
    renamed_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (``renamed_from`` only on renamed items)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "changed_fields": list(self.changed_fields),
        }
        if self.renamed_from is not None:
            data["renamed_from"] = self.renamed_from
        return data


@dataclass
class Plan:
    """Every dataclass, job and component a file declares, in order.

    Also lists what apply archives without the file declaring it: first the jobs and dataclasses
    pruned (``prune=True``), then, after each job's declared components, the components the file
    no longer lists.
    """

    items: list[PlanItem] = field(default_factory=list)
    dry_run: bool = False
    prune: bool = False

    def add(
        self,
        kind: Kind,
        name: str,
        action: Action,
        changed_fields: tuple[str, ...] = (),
        *,
        renamed_from: str | None = None,
    ) -> None:
        """Record one line of the plan."""
        self.items.append(PlanItem(kind, name, action, tuple(changed_fields), renamed_from))

    def counts(self) -> dict[Action, int]:
        """``{"created": n, "updated": n, "archived": n, "unchanged": n}``.

        ``"renamed": n`` comes after ``updated`` when the plan renames anything.
        """
        counts = dict.fromkeys(ACTIONS, 0)
        for item in self.items:
            counts[item.action] += 1
        return {
            action: count
            for action, count in counts.items()
            if count or action not in _OPTIONAL_ACTIONS
        }

    @property
    def changed(self) -> bool:
        """Whether applying writes (or wrote) anything."""
        return any(item.action != "unchanged" for item in self.items)

    def summary(self) -> str:
        """``2 created, 1 updated, 0 archived, 9 unchanged`` (``1 renamed`` when there is one)."""
        return ", ".join(f"{count} {action}" for action, count in self.counts().items())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "dry_run": self.dry_run,
            "prune": self.prune,
            "changed": self.changed,
            "counts": self.counts(),
            "items": [item.to_dict() for item in self.items],
        }
