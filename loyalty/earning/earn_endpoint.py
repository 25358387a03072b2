"""`POST /wallets/{userId}/earn`: the booking service reports a paid booking and gets the earn
back at once. The same accrual as the booking events (loyalty.earning.accrual), so a booking
earns once whichever way its payment is reported."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.core.settings import Settings
from loyalty.earning.accrual import accrual_row, accrue
from loyalty.earning.contracts import EarnCommand
from loyalty.earning.schemas import EarnIn, EarnOut, EarnRuleOut
from loyalty.ledger.schemas import BalanceOut, TransactionOut
from loyalty.notifications import outbox


async def earn_on_payment(
    conn: AsyncConnection, user_id: str, body: EarnIn, settings: Settings
) -> EarnOut:
    """The internal earn endpoint: the same accrual as the booking events, posted at once.
    A replay (or a booking that already earned on this payment through its events) answers the
    earn as posted; `posted: false` when nothing was posted (zero points, or still pending)."""
    accrued = await accrue(
        conn,
        EarnCommand(
            booking_id=body.booking_id,
            user_id=user_id,
            payment_id=body.payment_id,
            amount_paid=body.amount_paid,
            currency=body.currency,
            paid_at=datetime.now(UTC),
            product_type=body.product_type,
            category=body.category,
        ),
        settings,
    )
    outcome = accrued.outcome
    if accrued.posting is None:  # a replay: its notification is already in the outbox
        await outbox.enqueue(conn, outcome.notifications)
    wallet = accrued.wallet or await ledger.get_wallet(conn, user_id)
    posting = accrued.posting
    if posting is None and outcome.tx_id is not None:
        posting = await ledger.posting(conn, outcome.tx_id)
    trace: Mapping[str, Any] = posting.metadata if posting is not None else {}
    if not trace:
        accrual = await accrual_row(conn, body.booking_id)
        trace = dict(accrual["breakdown"]) if accrual is not None else {}
    return EarnOut(
        points=outcome.points,
        posted=outcome.status == "posted",
        replayed=outcome.replayed,
        idempotency_key=outcome.idempotency_key,
        rule=EarnRuleOut(
            earn_rate_currency_per_point=trace.get(
                "earn_rate_currency_per_point", settings.earn_rate_currency_per_point
            ),
            tier=trace.get("tier", wallet.tier),
            earn_multiplier_pct=trace.get("earn_multiplier_pct", 100),
        ),
        transaction=TransactionOut.model_validate(posting) if posting is not None else None,
        wallet=BalanceOut.of(wallet),
    )
