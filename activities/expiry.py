"""Points expiry activities: where the run starts (the ledger's last row, the lots due), a batch
of due lots expired (one `ledger.expire_lot` posting per lot, each its own statement in
autocommit, a few connections at once), a batch of reminders (one transaction with its outbox
rows). loyalty.expiry holds the SQL and the rules; a retried batch posts and writes nothing
twice and counts the same (loyalty.expiry.expiring, loyalty.expiry.reminders)."""

from __future__ import annotations

import contextlib

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.support import autocommit, refusals_final, transaction
from loyalty.expiry import expiring, reminders
from loyalty.expiry.contracts import (
    ExpiryBatchInput,
    ExpiryBatchResult,
    ExpiryStart,
    ExpiryStartInput,
    ReminderBatchInput,
    ReminderBatchResult,
)


class ExpiryActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="start_points_expiry")
    async def start(self, inp: ExpiryStartInput) -> ExpiryStart:
        """The ledger row the run starts after, and the lots due at its instant."""
        async with refusals_final(), self._engine.connect() as conn:
            return await expiring.start(conn, inp.as_of)

    @activity.defn(name="expire_points_batch")
    async def expire_batch(self, batch: ExpiryBatchInput) -> ExpiryBatchResult:
        """Expire the next page of due lots to the breakage account. A ledger refusal (a lot
        expired under another key) is final: a retry would get the same answer."""
        async with refusals_final(), contextlib.AsyncExitStack() as stack:
            conns = [
                await stack.enter_async_context(autocommit(self._engine))
                for _ in range(batch.concurrency)
            ]
            return await expiring.expire_batch(
                conns, batch, retried=activity.info().attempt > 1, beat=activity.heartbeat
            )

    @activity.defn(name="remind_points_expiring")
    async def remind_batch(self, batch: ReminderBatchInput) -> ReminderBatchResult:
        """Remind the next page's customers of their points due within the window."""
        async with refusals_final(), transaction(self._engine) as conn:
            return await reminders.remind_batch(conn, batch)
