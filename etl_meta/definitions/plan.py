"""What applying a definitions file did (or, in a dry run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["dataclass", "job", "component"]
Action = Literal["created", "updated", "unchanged", "archived"]

#: Actions in the order summaries list them.
ACTIONS: tuple[Action, ...] = ("created", "updated", "archived", "unchanged")


@dataclass(frozen=True)
class PlanItem:
    """One entity and what happened to it.

    ``name`` is ``job.component`` for components. ``changed_fields`` names the fields an update
    changed (never their values: configuration may hold secrets).
    """

    kind: Kind
    name: str
    action: Action
    changed_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "changed_fields": list(self.changed_fields),
        }


@dataclass
class Plan:
    """Every dataclass, job and component a file declares (plus archived components), in order."""

    items: list[PlanItem] = field(default_factory=list)
    dry_run: bool = False

    def add(
        self, kind: Kind, name: str, action: Action, changed_fields: tuple[str, ...] = ()
    ) -> None:
        """Record one line of the plan."""
        self.items.append(PlanItem(kind, name, action, tuple(changed_fields)))

    def counts(self) -> dict[Action, int]:
        """``{"created": n, "updated": n, "archived": n, "unchanged": n}``."""
        counts = dict.fromkeys(ACTIONS, 0)
        for item in self.items:
            counts[item.action] += 1
        return counts

    @property
    def changed(self) -> bool:
        """Whether applying writes (or wrote) anything."""
        return any(item.action != "unchanged" for item in self.items)

    def summary(self) -> str:
        """``2 created, 1 updated, 0 archived, 9 unchanged``."""
        return ", ".join(f"{count} {action}" for action, count in self.counts().items())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "counts": self.counts(),
            "items": [item.to_dict() for item in self.items],
        }
