"""Side effects (ledger writes, Stripe calls, notifications) as Temporal activities.

Activities are methods of classes that receive their dependencies; `build_activities` wires them
for the worker. Add new activity classes here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.settings import Settings


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    engine: AsyncEngine


def build_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    # Imported here: activity modules import Dependencies from this package.
    from activities.maintenance import MaintenanceActivities

    maintenance = MaintenanceActivities(deps)
    return [maintenance.check_ledger_invariants]
