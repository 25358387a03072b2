"""Schedules the worker owns (tier evaluation, ledger invariants): created at start, or brought
up to date in place. Updating keeps the schedule's state (paused or not, and the operator's
note), so a redeploy never un-pauses a schedule an operator paused."""

from __future__ import annotations

from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
)


async def ensure_schedule(
    client: Client, schedule_id: str, schedule: Schedule
) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one up to date keeping its state."""
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule.state = current.description.schedule.state
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(schedule_id).update(keep_state)
    return "updated"
