"""The `ledger-reconciliation` Temporal Schedule: created at worker start, or updated in place.

Every RECONCILIATION_INTERVAL_SECONDS it starts the reconciliation (LedgerReconciliation), which
compares settled checkouts with Stripe, open holds with running sagas and voucher purchases with
their codes, records each mismatch as a finding (GET /reconciliation/findings) and ends with the
counts per kind as its result. Overlap policy SKIP: a run still walking when the next is due
makes that one skip. Catch-up window one interval: after an outage one missed run starts, the
rest are skipped (each run covers everything). Updating keeps the schedule's state (paused or
not, and the operator's note), so a redeploy never un-pauses it.

Operators: `temporal schedule trigger --schedule-id ledger-reconciliation` runs it now.
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
from loyalty.reconciliation.contracts import WORKFLOW_NAME, ReconciliationInput

SCHEDULE_ID = "ledger-reconciliation"
# A walk that outlasts this has a worker missing or Stripe away for hours; it ends, and the next
# one starts over, instead of holding every later run off (overlap SKIP).
WORKFLOW_TIMEOUT = timedelta(hours=6)


def build_schedule(settings: Settings) -> Schedule:
    """The schedule as these settings describe it, on settings.temporal_task_queue."""
    every = timedelta(seconds=settings.reconciliation_interval_seconds)
    inp = ReconciliationInput(batch_size=settings.reconciliation_batch_size)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            inp,
            # The schedule appends the scheduled time: ledger-reconciliation-2026-12-03T07:00:00Z.
            id=SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            static_summary="Reconcile the ledger with Stripe, sagas and vouchers",
            static_details=(
                f"Every {settings.reconciliation_interval_seconds} s, batches of "
                f"{inp.batch_size}. The result counts findings per kind; "
                "GET /reconciliation/findings?run=<workflow id> lists them. Query `progress` "
                "while it runs."
            ),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
        state=ScheduleState(note="ledger reconciliation: created by the worker at start-up"),
    )


async def ensure_reconciliation_schedule(
    client: Client, settings: Settings
) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one up to date keeping its state."""
    return await ensure_schedule(client, SCHEDULE_ID, build_schedule(settings))
