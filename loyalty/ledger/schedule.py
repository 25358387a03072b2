"""The `ledger-invariants` Temporal Schedule: created at worker start, or updated in place.

Every LEDGER_INVARIANTS_INTERVAL_SECONDS it starts InvariantCheckWorkflow, which checks the ledger
and stuck money (holds past their expiry plus HOLD_EXPIRY_GRACE_SECONDS, running checkouts whose
hold is resolved) and marks a run that found violations with the LedgerAlert search attribute.
The input names no grace: the worker's setting applies when the check runs. Overlap policy SKIP:
a check still going when the next one is due makes that one skip. Catch-up window one interval:
after an outage one missed run starts, the rest are skipped (each check covers everything).
Updating keeps the schedule's state (paused or not, and the operator's note), so a redeploy never
un-pauses it.

Operators: `temporal schedule trigger --schedule-id ledger-invariants` runs it now;
`temporal workflow list --query 'LedgerAlert IS NOT NULL'` lists the runs that found violations.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)

from loyalty.core.schedules import ensure_schedule
from loyalty.core.settings import Settings
from loyalty.ledger.contracts import WORKFLOW_NAME, InvariantCheckInput

SCHEDULE_ID = "ledger-invariants"
# The check's activity may take 5 minutes and is tried 3 times; a run left without a worker ends
# by then instead of holding every later run off (overlap SKIP).
WORKFLOW_TIMEOUT = timedelta(minutes=20)


def build_schedule(settings: Settings) -> Schedule:
    """The schedule as these settings describe it, on settings.temporal_task_queue."""
    every = timedelta(seconds=settings.ledger_invariants_interval_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            InvariantCheckInput(),
            # The schedule appends the scheduled time: ledger-invariants-2026-11-26T02:05:00Z.
            id=SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            static_summary="Ledger invariants and stuck money",
            static_details=(
                f"Every {settings.ledger_invariants_interval_seconds} s. A run that finds "
                "violations completes with them in its result and sets LedgerAlert to the "
                "names of the failed checks."
            ),
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=every)],
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
        state=ScheduleState(note="ledger invariants: created by the worker at start-up"),
    )


async def ensure_invariants_schedule(
    client: Client, settings: Settings
) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one up to date keeping its state."""
    return await ensure_schedule(client, SCHEDULE_ID, build_schedule(settings))
