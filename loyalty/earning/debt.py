"""Points owed after a refund whose clawback found too few available points (the customer had
already spent them), and their repayment out of later earns.

`points_debt_entries` is append-only: a positive entry records a debt, a negative one a
repayment; what is owed is the sum. Every later earn repays first, in its own transaction: the
earn is posted in full (lifetime points count it) and a `clawback` row of the repaid points
follows it. That clawback leaves lifetime points alone: the refund that recorded the debt took
its tier credit back already (loyalty.earning.refunds), and the tiers' count of points kept
subtracts debt entries, in which the repayment's row and its negative entry cancel."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger

REPAYMENT_ACCOUNT = "issuance:debt-repayment"

_RECORD = text(
    "INSERT INTO points_debt_entries (user_id, points, booking_id, idempotency_key, tx_id) "
    "VALUES (:u, :p, :b, :k, :t) ON CONFLICT (idempotency_key) DO NOTHING"
)


async def record_entry(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    key: str,
    booking_id: str | None,
    tx_id: int | None,
) -> None:
    """A debt (positive) or a repayment (negative), once per key."""
    await conn.execute(_RECORD, {"u": user_id, "p": points, "b": booking_id, "k": key, "t": tx_id})


async def repay(
    conn: AsyncConnection, user_id: str, earn: ledger.Posting, points: int
) -> ledger.PostingResult:
    """Take `points` of a fresh earn back as repayment (the caller decided how many: the earning
    rule debt_repayment), keyed by the earn so a retry repays once."""
    key = f"debt-repay:{earn.idempotency_key}"
    posted = await ledger.clawback(
        conn,
        user_id=user_id,
        points=points,
        lifetime_points=0,  # taken off at the refund already: never twice
        idempotency_key=key,
        reverses_tx_id=earn.tx_id,
        counter_account=REPAYMENT_ACCOUNT,
        description="repays points owed after an earlier refund",
        metadata={"earn_tx_id": earn.tx_id},
    )
    await record_entry(
        conn, user_id=user_id, points=-points, key=key, booking_id=None, tx_id=posted.posting.tx_id
    )
    return posted
