"""The `tier-evaluation` Temporal Schedule: created at worker start, or updated in place.

Daily at TIER_EVALUATION_TIME in TIER_EVALUATION_TIMEZONE. Overlap policy SKIP: a run that is
still going when the next one is due makes that one skip (the next day catches up anyway).
Catch-up window 6 hours: after an outage the missed run starts if Temporal comes back within
6 hours of its time, otherwise the next daily run does the work. Updating keeps the
schedule's state (paused or not, and the operator's note), so a redeploy never un-pauses it.

Operators: `temporal schedule trigger --schedule-id tier-evaluation` runs it now;
`temporal schedule toggle --schedule-id tier-evaluation --pause --reason "..."` pauses it.
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
from loyalty.tiers.contracts import WORKFLOW_NAME, TierEvaluationInput

SCHEDULE_ID = "tier-evaluation"
CATCHUP_WINDOW = timedelta(hours=6)
WORKFLOW_TIMEOUT = timedelta(hours=12)


def build_schedule(settings: Settings) -> Schedule:
    """The schedule as these settings describe it, on settings.temporal_task_queue."""
    inp = TierEvaluationInput(
        batch_size=settings.tier_evaluation_batch_size,
        downgrade_grace_days=settings.tier_downgrade_grace_days,
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            inp,
            # The schedule appends the scheduled time: tier-evaluation-2026-11-26T02:00:00Z.
            id=SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            static_summary="Daily tier evaluation of every wallet",
            static_details=(
                f"Batches of {inp.batch_size} wallets, downgrade grace "
                f"{inp.downgrade_grace_days} days. Query `progress` for counts so far."
            ),
        ),
        spec=daily_spec(
            settings.tier_evaluation_time,
            settings.tier_evaluation_timezone,
            setting="TIER_EVALUATION_TIMEZONE",
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note="tier evaluation: created by the worker at start-up"),
    )


async def ensure_tier_schedule(client: Client, settings: Settings) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one up to date keeping its state."""
    return await ensure_schedule(client, SCHEDULE_ID, build_schedule(settings))
