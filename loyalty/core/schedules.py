"""Schedules the worker owns (tier evaluation, ledger invariants): created at start, or brought
up to date in place. Updating keeps the schedule's state (paused or not, and the operator's
note), so a redeploy never un-pauses a schedule an operator paused."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)


def daily_spec(time: str, time_zone: str, *, setting: str) -> ScheduleSpec:
    """Daily at `time` ("HH:MM") in `time_zone`; an unknown zone is refused naming `setting`
    (the *_TIMEZONE setting it came from)."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{setting} {time_zone!r} is not a known IANA time zone") from exc
    hour, minute = (int(part) for part in time.split(":"))
    return ScheduleSpec(
        calendars=[
            ScheduleCalendarSpec(
                hour=[ScheduleRange(hour)],
                minute=[ScheduleRange(minute)],
                comment=f"daily at {time}",
            )
        ],
        time_zone_name=time_zone,
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
