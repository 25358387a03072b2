"""The `ledger-reconciliation` schedule against the real Temporal dev server: `worker.py`
creates it at start-up; a later start updates it in place, keeping an operator's pause."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError

from loyalty.core.settings import Settings
from loyalty.reconciliation.schedule import SCHEDULE_ID, ensure_reconciliation_schedule
from tests.harness.workers import WorkerProcess


@pytest.fixture
async def no_schedule(temporal_client: Client) -> AsyncIterator[None]:
    """No reconciliation schedule before or after the test (the dev server is the session's,
    and any `worker.py` an earlier test started created one)."""

    async def delete() -> None:
        with contextlib.suppress(RPCError):  # none there
            await temporal_client.get_schedule_handle(SCHEDULE_ID).delete()

    await delete()
    yield
    await delete()


async def test_worker_start_creates_the_schedule_and_a_redeploy_keeps_its_pause(
    temporal_client: Client,
    settings: Settings,
    worker_process: WorkerProcess,
    no_schedule: None,
) -> None:
    await worker_process.start(within=120)

    handle = temporal_client.get_schedule_handle(SCHEDULE_ID)
    desc = await handle.describe()
    assert desc.schedule.spec.intervals[0].every == timedelta(seconds=3600)
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert desc.schedule.policy.catchup_window == timedelta(seconds=3600)
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == (
        "LedgerReconciliation",
        settings.temporal_task_queue,
    )
    assert not desc.schedule.state.paused

    await handle.pause(note="paused by an operator while Stripe is migrated")
    redeployed = settings.model_copy(update={"reconciliation_interval_seconds": 900})
    assert await ensure_reconciliation_schedule(temporal_client, redeployed) == "updated"

    desc = await handle.describe()
    assert desc.schedule.state.paused
    assert desc.schedule.state.note == "paused by an operator while Stripe is migrated"
    assert desc.schedule.spec.intervals[0].every == timedelta(seconds=900)
    assert desc.schedule.policy.catchup_window == timedelta(seconds=900)
