"""Ledger side of the redemption saga: place the hold (with the tier's cap), capture or release it.

Each call is one database transaction, and every posting carries an idempotency key derived from
the workflow, so a retried activity posts once. Business refusals (LoyaltyError) become
non-retryable ApplicationErrors whose type is the error code."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.support import transaction
from loyalty import ledger
from loyalty.core.errors import WalletNotFound
from loyalty.core.settings import Settings
from loyalty.redemption.rules import HoldPlaced, PlaceHold, SettleHold, plan_hold

_TIER_CAPS = text(
    "SELECT w.tier, t.redemption_cap_pct, t.redemption_cap_points "
    "FROM wallets w JOIN loyalty_tiers t ON t.code = w.tier WHERE w.user_id = :u"
)


class RedemptionActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    @activity.defn(name="place_redemption_hold")
    async def place_hold(self, command: PlaceHold) -> HoldPlaced:
        """Check the tier's cap for this booking and reserve the points (run as a local
        activity: it is on the checkout's critical path)."""
        request = command.request
        async with transaction(self._engine) as conn:
            row = (await conn.execute(_TIER_CAPS, {"u": request.user_id})).mappings().first()
            if row is None:
                raise WalletNotFound(
                    f"no wallet for user {request.user_id!r}", user_id=request.user_id
                )
            discount, remainder = plan_hold(
                request,
                tier=row["tier"],
                cap_pct=row["redemption_cap_pct"],
                cap_points=row["redemption_cap_points"],
                point_value_minor=self._settings.point_value_minor,
            )
            the_hold, _ = await ledger.hold(
                conn,
                user_id=request.user_id,
                points=request.points,
                idempotency_key=command.idempotency_key,
                expires_at=command.expires_at,
                booking_id=request.booking_id,
                hold_id=uuid.UUID(command.hold_id),
                description=f"checkout {request.booking_id}",
                metadata={"workflow_id": command.workflow_id, "order_amount": request.order_amount},
            )
        return HoldPlaced(
            hold_id=str(the_hold.hold_id),
            points=the_hold.amount,
            discount_minor=discount,
            amount_to_charge_minor=remainder,
            expires_at=the_hold.expires_at,
            tier=row["tier"],
        )

    @activity.defn(name="capture_redemption_hold")
    async def capture(self, command: SettleHold) -> None:
        """Post the held points as spent, with their currency equivalent."""
        async with transaction(self._engine) as conn:
            await ledger.capture(
                conn,
                hold_id=uuid.UUID(command.hold_id),
                idempotency_key=f"redemption:{command.hold_id}:capture",
                currency_amount=command.discount_minor,
                currency=command.currency,
                description=f"checkout {command.booking_id}: {command.reason}",
                metadata={"payment_intent_id": command.payment_intent_id},
            )

    @activity.defn(name="release_redemption_hold")
    async def release(self, command: SettleHold) -> None:
        """Void the hold: the points become available again."""
        async with transaction(self._engine) as conn:
            await ledger.release(
                conn,
                hold_id=uuid.UUID(command.hold_id),
                idempotency_key=f"redemption:{command.hold_id}:release",
                description=f"checkout {command.booking_id}: {command.reason}",
                metadata={"payment_intent_id": command.payment_intent_id},
            )
