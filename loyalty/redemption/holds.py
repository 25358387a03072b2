"""The checkout's side of the ledger: place a hold within the wallet's tier cap, and capture or
release it. The postings themselves are the ledger's (ledger.hold / capture / release); this
module adds the tier's cap and the checkout's keys, descriptions and metadata.

Each function runs on the caller's connection (the activities own it: `place` in autocommit, its
one write being the hold's posting; capture and release in a transaction).
Every posting's idempotency key comes from the saga (workflow run, hold id), so a retried
activity posts once and gets the first posting's result.

Capture and release put the customer's notification (points_redeemed, hold_released) in the
outbox on the same connection, so it exists exactly when the posting does (the activities run
them in one transaction); its key is the hold's, so a retried activity records it once."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.core.errors import LoyaltyError, WalletNotFound
from loyalty.notifications import outbox
from loyalty.notifications.models import Notification, NotificationKind
from loyalty.observability import metrics
from loyalty.redemption.contracts import HoldPlaced, PlaceHold, SettleHold
from loyalty.redemption.rules import plan_hold

_TIER_CAPS = text(
    "SELECT w.tier, t.redemption_cap_pct, t.redemption_cap_points "
    "FROM wallets w JOIN loyalty_tiers t ON t.code = w.tier WHERE w.user_id = :u"
)


async def place(conn: AsyncConnection, command: PlaceHold, *, point_value_minor: int) -> HoldPlaced:
    """Check the tier's cap for this booking and reserve the points; WalletNotFound,
    RedemptionCapExceeded or the ledger's refusal (InsufficientPoints ...) otherwise."""
    try:
        return await _place(conn, command, point_value_minor)
    except LoyaltyError:
        # A refusal is final (the activity does not retry it): the checkout's outcome.
        metrics.count_checkout(None, "refused")
        raise


async def _place(conn: AsyncConnection, command: PlaceHold, point_value_minor: int) -> HoldPlaced:
    request = command.request
    row = (await conn.execute(_TIER_CAPS, {"u": request.user_id})).mappings().first()
    if row is None:
        raise WalletNotFound(f"no wallet for user {request.user_id!r}", user_id=request.user_id)
    discount, remainder = plan_hold(
        request,
        tier=row["tier"],
        cap_pct=row["redemption_cap_pct"],
        cap_points=row["redemption_cap_points"],
        point_value_minor=point_value_minor,
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


async def capture(conn: AsyncConnection, command: SettleHold) -> Notification:
    """Post the held points as spent, with their currency equivalent, and put the customer's
    points_redeemed notification in the outbox. Returns the notification."""
    result = await ledger.capture(
        conn,
        hold_id=uuid.UUID(command.hold_id),
        idempotency_key=f"redemption:{command.hold_id}:capture",
        currency_amount=command.discount_minor,
        currency=command.currency,
        description=f"checkout {command.booking_id}: {command.reason}",
        metadata={"payment_intent_id": command.payment_intent_id},
    )
    if not result.replayed:
        metrics.count_checkout(conn, "captured")
    note = settled_notification(
        NotificationKind.POINTS_REDEEMED,
        command,
        user_id=result.wallet.user_id,
        points=-result.posting.held_delta,
        discount_minor=command.discount_minor,
        currency=command.currency,
    )
    await outbox.enqueue(conn, [note])
    return note


async def release(conn: AsyncConnection, command: SettleHold) -> Notification:
    """Void the hold: the points become available again; the customer's hold_released
    notification goes to the outbox. Returns the notification."""
    result = await ledger.release(
        conn,
        hold_id=uuid.UUID(command.hold_id),
        idempotency_key=f"redemption:{command.hold_id}:release",
        description=f"checkout {command.booking_id}: {command.reason}",
        metadata={"payment_intent_id": command.payment_intent_id},
    )
    if not result.replayed:
        metrics.count_checkout(conn, "released")
    note = settled_notification(
        NotificationKind.HOLD_RELEASED,
        command,
        user_id=result.wallet.user_id,
        points=-result.posting.held_delta,
    )
    await outbox.enqueue(conn, [note])
    return note


def settled_notification(
    kind: NotificationKind, command: SettleHold, *, user_id: str, points: int, **extra: object
) -> Notification:
    """The notification of a hold's capture or release, keyed by the hold: a hold resolves
    once, so its key names one event however often the activity runs."""
    return Notification(
        idempotency_key=f"{kind.value}:{command.hold_id}",
        kind=kind,
        user_id=user_id,
        payload={
            "booking_id": command.booking_id,
            "hold_id": command.hold_id,
            "points": points,
            **extra,
        },
    )
