"""Ledger side of the accrual and refund workflows. Each activity is one database transaction
over loyalty.earning.accrual / loyalty.earning.refunds, idempotent by booking, payment and
refund ids, so a retried activity (or a worker killed after the commit) changes nothing twice.
Refusals are final (activities.support)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.support import transaction
from loyalty.core.settings import Settings
from loyalty.earning import accrual, refunds
from loyalty.earning.contracts import (
    ActivateCommand,
    EarnCommand,
    EarnOutcome,
    RefundInput,
    RefundOutcome,
)
from loyalty.notifications import outbox


class EarningActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    @activity.defn(name="accrue_booking_points")
    async def accrue(self, cmd: EarnCommand) -> EarnOutcome:
        """Earn on the booking's payment: posted at once, or planned as pending."""
        async with transaction(self._engine) as conn:
            return (await accrual.accrue(conn, cmd, self._settings)).outcome

    @activity.defn(name="activate_booking_points")
    async def activate(self, cmd: ActivateCommand) -> EarnOutcome:
        """The pending period is over: post what is still pending."""
        async with transaction(self._engine) as conn:
            return await accrual.activate(conn, cmd.booking_id, cmd.user_id)

    @activity.defn(name="return_burned_points")
    async def return_burned(self, cmd: RefundInput) -> RefundOutcome:
        """Give back the points spent on the booking, pro rata to the money refunded."""
        async with transaction(self._engine) as conn:
            outcome = await refunds.return_burned_points(conn, cmd)
            # In the posting's transaction, so the notification and its event exist with it.
            await outbox.enqueue(conn, outcome.notifications)
            return outcome

    @activity.defn(name="claw_back_earned_points")
    async def claw_back(self, cmd: RefundInput) -> RefundOutcome:
        """Take back the points earned on the refunded money (debt for what is not there)."""
        async with transaction(self._engine) as conn:
            outcome = await refunds.claw_back_earned_points(conn, cmd)
            await outbox.enqueue(conn, outcome.notifications)
            return outcome
