"""Earning on a paid booking: the one path behind `POST /wallets/{userId}/earn` and the
AccrualWorkflow's activities.

- Points are earned on the money actually paid (loyalty.earning.rules: base rate, tier
  multiplier, the campaigns running when it was paid), every step rounded down. The earn's
  ledger row keeps the rule trace in its metadata.
- Idempotency: the posting key is `earn:{payment_id}`, or `earn:{booking_id}` without a payment
  id, whichever path posts it. A booking earns once: `booking_accruals` has one row per booking,
  so a second report of the same payment under another key answers the first earn, and a report
  with another amount is a conflict.
- Pending points: an earn with `pending_until` in the future is only planned (the row, status
  `pending`); activation posts it. Refunds that arrive first reduce or void it
  (loyalty.earning.refunds), so a refund inside the window costs nothing.
- Debt: a clawback larger than the available balance leaves a debt (loyalty.earning.debt); every
  later earn repays it first.
- Tier: after an earn the wallet moves up at once if its points now reach a higher tier.

Round trips of a fresh earn: lock the wallet, read every fact the rules need in one statement,
post the earn (one ledger call), record the accrual and its notification in one statement.
Every function takes the caller's connection inside a transaction and never commits; each locks
the wallet first, so earns, activations and refunds of one wallet run one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.core.errors import IdempotencyConflict, NotFound, ValidationFailed
from loyalty.core.settings import Settings
from loyalty.earning import debt, rules
from loyalty.earning.contracts import EarnCommand, EarnOutcome
from loyalty.earning.facts import EarnFacts, lock_and_read
from loyalty.notifications import outbox
from loyalty.notifications.models import Notification, NotificationKind
from loyalty.tiers import rules as tier_rules
from loyalty.tiers import store as tier_store


def earned_notification(user_id: str, key: str, booking_id: str, points: int) -> Notification:
    return Notification(
        idempotency_key=f"points_earned:{key}",
        kind=NotificationKind.POINTS_EARNED,
        user_id=user_id,
        payload={"booking_id": booking_id, "points": points},
    )


@dataclass(frozen=True)
class Accrued:
    """An accrual's outcome, with what the earn endpoint answers when this call posted it."""

    outcome: EarnOutcome
    wallet: ledger.WalletState | None = None  # after the earn, when nothing else moved it
    posting: ledger.Posting | None = None  # the earn, when this call posted it


async def accrue(conn: AsyncConnection, cmd: EarnCommand, settings: Settings) -> Accrued:
    """Earn on the booking's payment: post at once, or plan it as pending until
    `cmd.pending_until`. Idempotent by booking and by posting key."""
    if cmd.currency != settings.currency:
        raise ValidationFailed(
            f"amount_paid must be in {settings.currency}",
            currency=cmd.currency,
            expected=settings.currency,
        )
    key = rules.earn_key(cmd.booking_id, cmd.payment_id)
    wallet, facts = await lock_and_read(conn, cmd.user_id, cmd.booking_id, key, cmd.paid_at)
    if facts.accrual_exists:
        return Accrued(await _replay(conn, cmd))
    if facts.earn_exists:
        return Accrued(await _adopt(conn, cmd, key))
    multiplier = facts.multiplier(wallet.tier)
    breakdown = rules.compute_earn(
        rules.BookingFacts(
            amount_paid=cmd.amount_paid,
            paid_at=cmd.paid_at,
            product_type=cmd.product_type,
            category=cmd.category,
        ),
        currency_per_point=settings.earn_rate_currency_per_point,
        tier_code=wallet.tier,
        tier_multiplier_pct=multiplier,
        campaigns=facts.campaigns,
    )
    plan = rules.plan_accrual(
        breakdown.total,
        amount_paid=cmd.amount_paid,
        refunded=facts.refunded,
        full_refund=facts.full_refund,
        pending_until=cmd.pending_until,
        now=facts.as_of,
    )
    accrual = AccrualRecord(
        booking_id=cmd.booking_id,
        user_id=cmd.user_id,
        payment_id=cmd.payment_id,
        amount_paid=cmd.amount_paid,
        currency=cmd.currency,
        points=plan.points,
        idempotency_key=key,
        breakdown=rules.rule_trace(
            breakdown,
            tier=wallet.tier,
            earn_multiplier_pct=multiplier,
            currency_per_point=settings.earn_rate_currency_per_point,
            amount_paid=cmd.amount_paid,
            lot_validity_months=rules.lot_validity(facts.campaigns, breakdown),
        ),
    )
    if plan.status != "posted" or plan.net == 0:
        pending = plan.net if plan.status == "pending" else 0
        await _insert(conn, accrual, status=plan.status, pending=pending, until=plan.pending_until)
        return Accrued(
            EarnOutcome(
                booking_id=cmd.booking_id,
                status="nothing_to_earn" if plan.status == "posted" else plan.status,
                points=pending,
                planned_points=plan.points,
                idempotency_key=key,
                pending_until=plan.pending_until,
            )
        )
    return await _post(conn, accrual, plan.net, wallet, facts, new=True)


async def activate(conn: AsyncConnection, booking_id: str, user_id: str) -> EarnOutcome:
    """The pending period is over: post what is still pending (refunds meanwhile reduced or
    voided it). Idempotent: an accrual already posted or voided is answered as it stands."""
    await ledger.lock_wallet(conn, user_id)
    row = await accrual_row(conn, booking_id)
    if row is None:
        raise NotFound(f"no accrual for booking {booking_id}", booking_id=booking_id)
    if row["status"] != "pending":
        return await _outcome_of(conn, row, replayed=True)
    key = row["idempotency_key"]
    wallet, facts = await lock_and_read(conn, user_id, booking_id, key, row["updated_at"])
    accrual = AccrualRecord.of(row)
    return (
        await _post(conn, accrual, int(row["pending_points"]), wallet, facts, new=False)
    ).outcome


# --- the booking's accrual row -----------------------------------------------------------------


@dataclass(frozen=True)
class AccrualRecord:
    """A booking's accrual as the write path needs it."""

    booking_id: str
    user_id: str
    payment_id: str | None
    amount_paid: int
    currency: str
    points: int  # what the payment earned before refunds
    idempotency_key: str
    breakdown: dict[str, Any]  # the rule trace

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> AccrualRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


_ACCRUAL_ROW = text("SELECT * FROM booking_accruals WHERE booking_id = :b")
_INSERT = text(
    "INSERT INTO booking_accruals (booking_id, user_id, payment_id, amount_paid, currency, "
    "points, pending_points, status, pending_until, idempotency_key, earn_tx_id, breakdown) "
    "VALUES (:b, :u, :p, :amount, :currency, :points, :pending, :status, :until, :key, :tx, "
    "CAST(:breakdown AS jsonb))"
)
# Written alongside the earn (ledger.Alongside): `posted` is the earn's row.
_POSTED_NEW = (
    "INSERT INTO booking_accruals (booking_id, user_id, payment_id, amount_paid, currency, "
    "points, pending_points, status, idempotency_key, earn_tx_id, breakdown) "
    "SELECT :a_b, :a_u, :a_p, :a_amount, :a_currency, :a_points, 0, 'posted', :a_key, "
    "posted.tx_id, CAST(:a_breakdown AS jsonb) FROM posted"
)
_POSTED_PENDING = (
    "UPDATE booking_accruals SET status = 'posted', earn_tx_id = posted.tx_id, "
    "pending_points = 0, updated_at = now() FROM posted WHERE booking_accruals.booking_id = :a_b"
)


async def accrual_row(conn: AsyncConnection, booking_id: str) -> Mapping[Any, Any] | None:
    return (await conn.execute(_ACCRUAL_ROW, {"b": booking_id})).mappings().first()


def _params(accrual: AccrualRecord, prefix: str = "a_") -> dict[str, Any]:
    values = {
        "b": accrual.booking_id,
        "u": accrual.user_id,
        "p": accrual.payment_id,
        "amount": accrual.amount_paid,
        "currency": accrual.currency,
        "points": accrual.points,
        "key": accrual.idempotency_key,
        "breakdown": json.dumps(accrual.breakdown),
    }
    return {f"{prefix}{name}": value for name, value in values.items()}


async def _insert(
    conn: AsyncConnection,
    accrual: AccrualRecord,
    *,
    status: str,
    pending: int,
    until: datetime | None,
    tx_id: int | None = None,
) -> None:
    params = _params(accrual, prefix="") | {
        "pending": pending,
        "status": status,
        "until": until,
        "tx": tx_id,
    }
    await conn.execute(_INSERT, params)


async def _post(
    conn: AsyncConnection,
    accrual: AccrualRecord,
    points: int,
    wallet: ledger.WalletState,
    facts: EarnFacts,
    *,
    new: bool,
) -> Accrued:
    """Post the planned earn (the accrual row is `posted` after this), repay debt first, move
    the tier up if the points reach a higher one."""
    metadata = dict(accrual.breakdown)
    if points != accrual.points:
        metadata["reduced_by_refunds"] = accrual.points - points
    notes = [
        earned_notification(accrual.user_id, accrual.idempotency_key, accrual.booking_id, points)
    ]
    # The wallet is locked: its lifetime and trailing points after this earn are known now (a
    # debt repayment below moves points, not tier credit: loyalty.earning.debt).
    tier = tier_rules.realtime(
        facts.ladder,
        wallet.tier,
        lifetime=wallet.lifetime_points + points,
        trailing=facts.trailing + points,
    )
    # The accrual row, the notification and a pending downgrade the points cancel land in the
    # earn's own statement.
    rows, note_params = outbox.values(notes)
    bookkeeping = ledger.Alongside(
        f"accrued AS ({_POSTED_NEW if new else _POSTED_PENDING}), "
        "cleared AS (DELETE FROM wallet_tier_status WHERE wallet_id = :a_w "
        f"AND CAST(:a_clear AS boolean)), noted AS ({outbox.insert_sql(rows)})",
        _params(accrual) | note_params | {"a_w": wallet.wallet_id, "a_clear": tier.clear_pending},
    )
    result = await ledger.earn(
        conn,
        user_id=accrual.user_id,
        points=points,
        idempotency_key=accrual.idempotency_key,
        booking_id=accrual.booking_id,
        payment_id=accrual.payment_id,
        currency_amount=accrual.amount_paid,
        currency=accrual.currency,
        counter_account=rules.counter_account_of(metadata),
        description=f"earned on booking {accrual.booking_id}",
        metadata=metadata,
        alongside=bookkeeping,
        validity_months=rules.validity_of(metadata),
    )
    repaid = rules.debt_repayment(facts.debt, points)
    if repaid:
        await debt.repay(conn, accrual.user_id, result.posting, repaid)
    if tier.upgrade_to is not None:
        change = await tier_store.apply_realtime_upgrade(
            conn, wallet.wallet_id, source=accrual.idempotency_key
        )
        if change is not None:  # already in the outbox
            notes.append(change.notification)
    outcome = EarnOutcome(
        booking_id=accrual.booking_id,
        status="posted",
        points=points,
        planned_points=accrual.points,
        idempotency_key=accrual.idempotency_key,
        tx_id=result.posting.tx_id,
        debt_repaid=repaid,
        notifications=notes,
    )
    moved = repaid or tier.upgrade_to is not None  # the wallet changed again after the earn
    return Accrued(outcome, wallet=None if moved else result.wallet, posting=result.posting)


# --- replays -----------------------------------------------------------------------------------


def _check_same_booking(row: Mapping[Any, Any], cmd: EarnCommand) -> None:
    if (row["user_id"], row["amount_paid"], row["currency"]) != (
        cmd.user_id,
        cmd.amount_paid,
        cmd.currency,
    ):
        raise IdempotencyConflict(
            f"booking {cmd.booking_id} already earned on another payment",
            idempotency_key=row["idempotency_key"],
        )


async def _outcome_of(
    conn: AsyncConnection, row: Mapping[Any, Any], *, replayed: bool
) -> EarnOutcome:
    """The accrual as it stands, with its earned notification when posted (the notification
    is keyed: sending it again sends nothing)."""
    status = row["status"]
    if status == "pending":
        points = int(row["pending_points"])
    else:
        posting = await ledger.posting(conn, row["earn_tx_id"]) if row["earn_tx_id"] else None
        points = posting.amount if posting else 0
        if status == "posted" and posting is None:
            status = "nothing_to_earn"
    outcome = EarnOutcome(
        booking_id=row["booking_id"],
        status=status,
        points=points,
        planned_points=int(row["points"]),
        idempotency_key=row["idempotency_key"],
        tx_id=row["earn_tx_id"],
        pending_until=row["pending_until"],
        replayed=replayed,
    )
    if status == "posted":
        outcome.notifications = [
            earned_notification(row["user_id"], row["idempotency_key"], row["booking_id"], points)
        ]
    return outcome


async def _replay(conn: AsyncConnection, cmd: EarnCommand) -> EarnOutcome:
    row = await accrual_row(conn, cmd.booking_id)
    if row is None:  # the wallet lock orders accruals of a booking: it cannot vanish
        raise NotFound(f"no accrual for booking {cmd.booking_id}", booking_id=cmd.booking_id)
    _check_same_booking(row, cmd)
    return await _outcome_of(conn, row, replayed=True)


_EARN_BY_KEY = text(
    "SELECT t.tx_id, t.type, t.amount, t.booking_id, t.payment_id, t.currency_amount, "
    "t.currency, w.user_id FROM wallet_transactions t "
    "JOIN wallets w ON w.wallet_id = t.wallet_id WHERE t.idempotency_key = :k"
)


async def _adopt(conn: AsyncConnection, cmd: EarnCommand, key: str) -> EarnOutcome:
    """The key was posted before the booking had an accrual row (an earn posted before accruals
    were kept): record it as the booking's accrual, post nothing."""
    existing = (await conn.execute(_EARN_BY_KEY, {"k": key})).mappings().one()
    same = (
        existing["type"],
        existing["user_id"],
        existing["booking_id"],
        existing["payment_id"],
        existing["currency_amount"],
        existing["currency"],
    ) == ("earn", cmd.user_id, cmd.booking_id, cmd.payment_id, cmd.amount_paid, cmd.currency)
    if not same:
        raise IdempotencyConflict(
            "this booking or payment already earned points with a different request",
            idempotency_key=key,
        )
    accrual = AccrualRecord(
        booking_id=cmd.booking_id,
        user_id=cmd.user_id,
        payment_id=cmd.payment_id,
        amount_paid=cmd.amount_paid,
        currency=cmd.currency,
        points=int(existing["amount"]),
        idempotency_key=key,
        breakdown={},
    )
    await _insert(conn, accrual, status="posted", pending=0, until=None, tx_id=existing["tx_id"])
    return EarnOutcome(
        booking_id=cmd.booking_id,
        status="posted",
        points=int(existing["amount"]),
        planned_points=int(existing["amount"]),
        idempotency_key=key,
        tx_id=existing["tx_id"],
        replayed=True,
    )
