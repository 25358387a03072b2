"""The `points-expiry` Temporal Schedule: created at worker start, or updated in place.

Daily at POINTS_EXPIRY_TIME in POINTS_EXPIRY_TIMEZONE. Overlap policy SKIP: a run still going
when the next is due makes that one skip (the next day's run expires whatever is due by then).
Catch-up window 6 hours: after an outage the missed run starts if Temporal comes back within 6
hours of its time. Updating keeps the schedule's state (paused or not, and the operator's note),
so a redeploy never un-pauses it.

Operators: `temporal schedule trigger --schedule-id points-expiry` runs it now;
`temporal schedule toggle --schedule-id points-expiry --pause --reason "..."` pauses it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleState,
)

from loyalty.core.schedules import daily_spec, ensure_schedule
from loyalty.core.settings import Settings
from loyalty.expiry.contracts import WORKFLOW_NAME, ExpiryInput

SCHEDULE_ID = "points-expiry"
CATCHUP_WINDOW = timedelta(hours=6)
WORKFLOW_TIMEOUT = timedelta(hours=20)


def build_schedule(settings: Settings) -> Schedule:
    """The schedule as these settings describe it, on settings.temporal_task_queue."""
    inp = ExpiryInput(
        batch_size=settings.points_expiry_batch_size,
        reminder_days=settings.points_expiry_reminder_days,
    )
    reminders = f"reminders {inp.reminder_days} days ahead" if inp.reminder_days else "no reminders"
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            inp,
            # The schedule appends the scheduled time: points-expiry-2026-12-04T03:00:00Z.
            id=SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            static_summary="Daily points expiry and reminders",
            static_details=(
                f"Batches of {inp.batch_size} due lots, {reminders}. Query `progress` for "
                "lots and points expired, wallets touched and where the walk is."
            ),
        ),
        spec=daily_spec(
            settings.points_expiry_time,
            settings.points_expiry_timezone,
            setting="POINTS_EXPIRY_TIMEZONE",
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note="points expiry: created by the worker at start-up"),
    )


async def ensure_expiry_schedule(
    client: Client, settings: Settings
) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one up to date keeping its state."""
    return await ensure_schedule(client, SCHEDULE_ID, build_schedule(settings))
