"""`python worker.py` killed with SIGKILL in the middle of an expiry run, then restarted: the run
resumes where it was (the batch that was running stops heartbeating and is retried on the new
worker), every due lot is expired exactly once, and the run's counts are exact.

On the real dev server, in real time: the lots are seeded already due (bench/seed_ledger.py, as
the owner), so the run's `now` finds them due without skipping any clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from bench import seed_ledger
from loyalty.core.settings import Settings
from loyalty.expiry.contracts import ExpiryInput, ExpiryProgress
from tests.expiry import helpers
from tests.harness.waits import eventually, within
from tests.harness.workers import WorkerProcess
from workflows.expiry import PointsExpiryWorkflow


async def test_a_killed_worker_resumes_the_run_and_expires_each_lot_once(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    worker_process: WorkerProcess,
) -> None:
    async with owner_engine.begin() as conn:
        seeded = await seed_ledger.seed(
            conn,
            wallets=150,
            transactions=600,
            due_share=0.6,
            prefix=f"kill-{uuid.uuid4().hex[:8]}",
        )
    assert seeded.due_lots > 150
    before = await helpers.lots(engine)

    first = await worker_process.start()
    # Small pages, one posting at a time: the run is still going when the worker dies.
    handle = await temporal_client.start_workflow(
        PointsExpiryWorkflow.run,
        ExpiryInput(
            batch_size=10, batches_per_run=4, concurrency=1, heartbeat_seconds=2, reminder_days=0
        ),
        id=f"points-expiry-kill-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
        execution_timeout=timedelta(minutes=5),
    )

    async def under_way() -> ExpiryProgress | None:
        progress = await handle.query(PointsExpiryWorkflow.progress)
        return progress if progress is not None and progress.lots_expired >= 30 else None

    await eventually(under_way, seconds=60, every=0.05)

    async def batch_running() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return any(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in pending)

    await eventually(batch_running, seconds=30, every=0.01)
    worker_process.kill(first)  # in the middle of a batch
    async with engine.connect() as conn:
        at_kill = (
            await conn.execute(
                text("SELECT count(*) FROM point_lots WHERE expired_tx_id IS NOT NULL")
            )
        ).scalar_one()
    await worker_process.start()
    progress = (await within(handle.result(), 120)).progress

    due = helpers.due(before, progress.as_of)
    postings = await helpers.expire_postings(engine, progress.tx_watermark)  # asserts once each
    assert set(postings) == set(due)
    assert all(postings[lot][0] == -due[lot].remaining for lot in due)
    assert (
        progress.lots_expired
        == len(due)
        > at_kill - sum(1 for lot in before.values() if lot.expired_tx_id is not None)
    )
    assert progress.points_expired == sum(lot.remaining for lot in due.values())
    assert progress.wallets_touched == len({lot.wallet_id for lot in due.values()})
    after = await helpers.lots(engine)
    assert all(after[lot].remaining == 0 for lot in due)
    assert await _retried_batches(temporal_client, handle.id, handle.first_execution_run_id) == 1


async def _retried_batches(client: Client, workflow_id: str, run_id: str | None) -> int:
    """Batches of the whole continue-as-new chain that took more than one attempt."""
    retried = 0
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        retried += sum(
            1
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.attempt > 1
        )
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return retried
