"""Ledger side of the accrual and refund workflows. Each activity is one database transaction
over loyalty.accrual / loyalty.refunds, idempotent by booking, payment and refund ids, so a
retried activity (or a worker killed after the commit) changes nothing twice. Business refusals
(LoyaltyError) become non-retryable ApplicationErrors whose type is the error code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from loyalty import accrual, refunds
from loyalty.booking_events import (
    ActivateCommand,
    EarnCommand,
    EarnOutcome,
    RefundInput,
    RefundOutcome,
)
from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.core.settings import Settings


class EarningActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with db.begin(self._engine) as conn:
                yield conn
        except LoyaltyError as err:  # rolled back by begin(); refuse for good
            raise ApplicationError(
                err.message, err.details, type=err.code, non_retryable=True
            ) from err

    @activity.defn(name="accrue_booking_points")
    async def accrue(self, cmd: EarnCommand) -> EarnOutcome:
        """Earn on the booking's payment: posted at once, or planned as pending."""
        async with self._transaction() as conn:
            return await accrual.accrue(conn, cmd, self._settings)

    @activity.defn(name="activate_booking_points")
    async def activate(self, cmd: ActivateCommand) -> EarnOutcome:
        """The pending period is over: post what is still pending."""
        async with self._transaction() as conn:
            return await accrual.activate(conn, cmd.booking_id, cmd.user_id)

    @activity.defn(name="return_burned_points")
    async def return_burned(self, cmd: RefundInput) -> RefundOutcome:
        """Give back the points spent on the booking, pro rata to the money refunded."""
        async with self._transaction() as conn:
            return await refunds.return_burned_points(conn, cmd)

    @activity.defn(name="claw_back_earned_points")
    async def claw_back(self, cmd: RefundInput) -> RefundOutcome:
        """Take back the points earned on the refunded money (debt for what is not there)."""
        async with self._transaction() as conn:
            return await refunds.claw_back_earned_points(conn, cmd)
