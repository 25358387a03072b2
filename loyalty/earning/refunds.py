"""Refund compensation: give back the points paid with and take back the points earned on the
refunded money, once per refund. Steps of the RefundWorkflow (activities.earning), each one
transaction that locks the wallet first (like every earn), so refunds, earns and activations of
one wallet run one at a time.

Pro rata, cumulatively: for the refunds of a booking so far (total `refunded` of `paid` money),
the points due back are computed on the total and the points already moved are subtracted, so
rounding never adds up over several partial refunds (loyalty.earning.rules.clawback_due). A full
refund (flag, cancellation, or refunds reaching the amount paid) moves everything.

- Return burned points first: each capture / burn of the booking gets `prorata(spent, refunded,
  paid)` back in total (ledger.refund, which never gives back more than was spent). An order
  paid entirely with points (`paid == 0`) can only be refunded in full.
- Then claw back earned points. If the earn is still pending, the pending points shrink (or are
  voided) and nothing is posted. If it was posted, a `clawback` row takes what is due.
- Debt rule: a clawback never takes available points below zero. When more is due than is
  available (the customer already spent the points), the available points are taken and the
  rest is recorded as a debt (`points_debt_entries`); the wallet shows it, and every later earn
  repays it first (loyalty.earning.debt). Points on hold for a checkout are not taken.
- Tier credit: the refund takes back the tier credit of every point due at once, taken or owed
  (lifetime points and the trailing basis drop by the points due; loyalty.tiers.rules). So the
  clawback row is posted whenever points are due, with 0 points when none are available: it
  carries the tier credit taken back. A later repayment moves points, not tier credit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.core.errors import IdempotencyConflict
from loyalty.earning import debt
from loyalty.earning import rules as earning
from loyalty.earning.accrual import accrual_row
from loyalty.earning.contracts import RefundInput, RefundOutcome
from loyalty.notifications.models import Notification, NotificationKind

REFUND_CLAWBACK_ACCOUNT = "issuance:refund-clawback"


async def _refund_row(conn: AsyncConnection, cmd: RefundInput) -> RowMapping:
    """The refund's row, recorded on first sight; a different refund under the same id is a
    conflict."""
    await conn.execute(
        text(
            "INSERT INTO booking_refunds (booking_id, refund_id, user_id, amount, currency, "
            "full_refund) VALUES (:b, :r, :u, :amount, :currency, :full) "
            "ON CONFLICT (booking_id, refund_id) DO NOTHING"
        ),
        {
            "b": cmd.booking_id,
            "r": cmd.refund_id,
            "u": cmd.user_id,
            "amount": cmd.refund_amount,
            "currency": cmd.currency,
            "full": cmd.full,
        },
    )
    row = (
        (
            await conn.execute(
                text(
                    "SELECT * FROM booking_refunds WHERE booking_id = :b AND refund_id = :r "
                    "FOR UPDATE"
                ),
                {"b": cmd.booking_id, "r": cmd.refund_id},
            )
        )
        .mappings()
        .one()
    )
    if (row["user_id"], row["amount"], row["currency"], row["full_refund"]) != (
        cmd.user_id,
        cmd.refund_amount,
        cmd.currency,
        cmd.full,
    ):
        raise IdempotencyConflict(
            f"refund {cmd.refund_id} of booking {cmd.booking_id} was reported differently",
            booking_id=cmd.booking_id,
            refund_id=cmd.refund_id,
        )
    return row


_REFUNDS_SO_FAR = text(
    "SELECT COALESCE(SUM(amount), 0), COALESCE(bool_or(full_refund), false) "
    "FROM booking_refunds WHERE booking_id = :b"
)


async def refunds_so_far(conn: AsyncConnection, booking_id: str) -> tuple[int, bool]:
    """Money refunded on the booking so far, and whether any refund was a full one."""
    row = (await conn.execute(_REFUNDS_SO_FAR, {"b": booking_id})).one()
    return int(row[0]), bool(row[1])


def _outcome(row: RowMapping) -> RefundOutcome:
    return RefundOutcome(
        booking_id=row["booking_id"],
        refund_id=row["refund_id"],
        points_returned=row["points_returned"] or 0,
        points_clawed_back=row["points_clawed_back"] or 0,
        pending_reduced=row["pending_reduced"] or 0,
        debt_recorded=row["debt_recorded"] or 0,
    )


async def _paid(conn: AsyncConnection, booking_id: str) -> int | None:
    paid = (
        await conn.execute(
            text("SELECT amount_paid FROM booking_accruals WHERE booking_id = :b"),
            {"b": booking_id},
        )
    ).scalar_one_or_none()
    return None if paid is None else int(paid)


async def return_burned_points(conn: AsyncConnection, cmd: RefundInput) -> RefundOutcome:
    """Step 1: give back the points spent on the booking, pro rata to the money refunded."""
    wallet = await ledger.lock_wallet(conn, cmd.user_id)
    row = await _refund_row(conn, cmd)
    if row["points_returned"] is not None:
        return _returned(row, int(row["points_returned"]))
    refunded, full = await refunds_so_far(conn, cmd.booking_id)
    paid = await _paid(conn, cmd.booking_id)
    spendings = (
        await conn.execute(
            text(
                "SELECT s.tx_id, -s.amount AS spent, COALESCE(("
                "  SELECT SUM(r.amount) FROM wallet_transactions r "
                "  WHERE r.reverses_tx_id = s.tx_id AND r.type = 'refund'), 0) AS returned "
                "FROM wallet_transactions s WHERE s.wallet_id = :w AND s.booking_id = :b "
                "AND s.type IN ('capture', 'burn') ORDER BY s.tx_id"
            ),
            {"w": wallet.wallet_id, "b": cmd.booking_id},
        )
    ).all()
    total = 0
    for tx_id, spent, returned in spendings:
        # Pro rata to the money refunded; with no payment known, only a full refund returns.
        target = earning.clawback_target(int(spent), paid or 0, refunded, full)
        due = target - int(returned)
        if due > 0:
            await ledger.refund(
                conn,
                reverses_tx_id=int(tx_id),
                points=due,
                idempotency_key=f"refund-return:{cmd.booking_id}:{cmd.refund_id}:{tx_id}",
                description=f"points back for refund {cmd.refund_id} of {cmd.booking_id}",
                metadata={"refund_id": cmd.refund_id, "refunded_total": refunded},
            )
            total += due
    await conn.execute(
        text(
            "UPDATE booking_refunds SET points_returned = :n "
            "WHERE booking_id = :b AND refund_id = :r"
        ),
        {"n": total, "b": cmd.booking_id, "r": cmd.refund_id},
    )
    return _returned(row, total)


def _returned(row: RowMapping, points: int) -> RefundOutcome:
    outcome = RefundOutcome(
        booking_id=row["booking_id"], refund_id=row["refund_id"], points_returned=points
    )
    if points:
        outcome.notifications.append(
            Notification(
                idempotency_key=f"points_returned:{row['booking_id']}:{row['refund_id']}",
                kind=NotificationKind.POINTS_RETURNED,
                user_id=row["user_id"],
                payload={
                    "booking_id": row["booking_id"],
                    "refund_id": row["refund_id"],
                    "points": points,
                },
            )
        )
    return outcome


async def claw_back_earned_points(conn: AsyncConnection, cmd: RefundInput) -> RefundOutcome:
    """Step 2: take back the points earned on the refunded money (or shrink pending points)."""
    wallet = await ledger.lock_wallet(conn, cmd.user_id)
    row = await _refund_row(conn, cmd)
    accrual = await accrual_row(conn, cmd.booking_id)
    if row["points_clawed_back"] is not None:
        stored = _clawed(row)
        stored.pending_voided = bool(
            stored.pending_reduced and accrual is not None and accrual["status"] == "voided"
        )
        return stored
    clawed = reduced = owed = 0
    voided = False
    if accrual is not None and accrual["status"] != "voided":
        refunded, full = await refunds_so_far(conn, cmd.booking_id)
        earned = int(accrual["points"])
        target = earning.clawback_target(earned, int(accrual["amount_paid"]), refunded, full)
        if accrual["status"] == "pending":
            still_pending = earned - target
            reduced = int(accrual["pending_points"]) - still_pending
            voided = still_pending == 0
            await conn.execute(
                text(
                    "UPDATE booking_accruals SET pending_points = :p, status = :s, "
                    "updated_at = now() WHERE booking_id = :b"
                ),
                {"p": still_pending, "s": "voided" if voided else "pending", "b": cmd.booking_id},
            )
        elif accrual["earn_tx_id"] is not None:
            already = await _already_taken(conn, accrual)
            due = max(0, target - already)
            clawed = min(due, wallet.available)
            owed = due - clawed
            tx_id: int | None = None
            if due:  # the tier credit of every point due goes now, owed ones included
                posted = await ledger.clawback(
                    conn,
                    user_id=cmd.user_id,
                    points=clawed,
                    lifetime_points=due,
                    idempotency_key=f"clawback:{cmd.booking_id}:{cmd.refund_id}",
                    reverses_tx_id=int(accrual["earn_tx_id"]),
                    booking_id=cmd.booking_id,
                    counter_account=REFUND_CLAWBACK_ACCOUNT,
                    description=f"earned points taken back: refund {cmd.refund_id}",
                    metadata={"refund_id": cmd.refund_id, "refunded_total": refunded, "due": due},
                )
                tx_id = posted.posting.tx_id
            if owed:
                await debt.record_entry(
                    conn,
                    user_id=cmd.user_id,
                    points=owed,
                    key=f"debt:{cmd.booking_id}:{cmd.refund_id}",
                    booking_id=cmd.booking_id,
                    tx_id=tx_id,
                )
    row = (
        (
            await conn.execute(
                text(
                    "UPDATE booking_refunds SET points_clawed_back = :c, pending_reduced = :p, "
                    "debt_recorded = :d WHERE booking_id = :b AND refund_id = :r RETURNING *"
                ),
                {"c": clawed, "p": reduced, "d": owed, "b": cmd.booking_id, "r": cmd.refund_id},
            )
        )
        .mappings()
        .one()
    )
    outcome = _clawed(row)
    outcome.pending_voided = voided
    return outcome


async def _already_taken(conn: AsyncConnection, accrual: Mapping[Any, Any]) -> int:
    """Points of this earn already taken off: reduced while pending, clawed back, or owed."""
    posted = (
        await conn.execute(
            text("SELECT amount FROM wallet_transactions WHERE tx_id = :t"),
            {"t": accrual["earn_tx_id"]},
        )
    ).scalar_one()
    row = (
        await conn.execute(
            text(
                "SELECT (SELECT COALESCE(SUM(-amount), 0) FROM wallet_transactions "
                "        WHERE booking_id = :b AND type = 'clawback' AND counter_account = :acct), "
                "       (SELECT COALESCE(SUM(points), 0) FROM points_debt_entries "
                "        WHERE booking_id = :b AND points > 0)"
            ),
            {"b": accrual["booking_id"], "acct": REFUND_CLAWBACK_ACCOUNT},
        )
    ).one()
    return int(accrual["points"]) - int(posted) + int(row[0]) + int(row[1])


def _clawed(row: RowMapping) -> RefundOutcome:
    outcome = _outcome(row)
    outcome.points_returned = 0
    taken = outcome.points_clawed_back + outcome.debt_recorded
    if taken:
        outcome.notifications.append(
            Notification(
                idempotency_key=f"points_clawed_back:{row['booking_id']}:{row['refund_id']}",
                kind=NotificationKind.POINTS_CLAWED_BACK,
                user_id=row["user_id"],
                payload={
                    "booking_id": row["booking_id"],
                    "refund_id": row["refund_id"],
                    "points": outcome.points_clawed_back,
                    "debt": outcome.debt_recorded,
                },
            )
        )
    return outcome
