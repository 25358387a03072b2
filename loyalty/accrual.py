"""Earning on a paid booking: the one path behind `POST /wallets/{userId}/earn` and the
AccrualWorkflow's activities.

- Points are earned on the money actually paid (loyalty.earning: base rate, tier multiplier,
  the campaigns running when it was paid), every step rounded down. The transaction's metadata
  records every rule line (`EarnBreakdown.as_metadata()`).
- Idempotency: the posting key is `earn:{payment_id}`, or `earn:{booking_id}` without a payment
  id, whichever path posts it. A booking earns once: `booking_accruals` has one row per booking,
  so a second report of the same payment under another key answers the first earn, and a
  report with another amount is a conflict.
- Pending points: an earn with `pending_until` in the future is only planned (the row, status
  `pending`); activation posts it. Refunds that arrive first reduce or void it (loyalty.refunds)
  so a refund inside the window costs nothing. Wallets show pending points apart.
- Debt: a clawback larger than the available balance leaves a debt (loyalty.refunds). Every
  later earn repays it first, in the same transaction: the earn is posted in full (lifetime
  points count it) and a `clawback` row of `min(debt, points)` follows it.
- Tier: after an earn the wallet moves up at once if its points now reach a higher tier
  (loyalty.tier_store.apply_realtime_upgrade).

Every function takes the caller's connection (inside a transaction) and never commits. Each
locks the wallet row first, so earn, activation and refunds of one wallet run one at a time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import campaigns, earning, ledger, notifications, tier_store
from loyalty.booking_events import EarnCommand, EarnOutcome
from loyalty.core import db
from loyalty.core.errors import IdempotencyConflict, NotFound, ValidationFailed
from loyalty.core.settings import Settings
from loyalty.notifications import Notification, NotificationKind
from loyalty.schemas import BalanceOut, EarnIn, EarnOut, EarnRuleOut, TransactionOut
from loyalty.tiers import Ladder, TierStep

DEBT_REPAYMENT_ACCOUNT = "issuance:debt-repayment"

Row = Mapping[Any, Any]  # a result row: SQLAlchemy's RowMapping, or a dict from loyalty.core.db


def earn_key(booking_id: str, payment_id: str | None) -> str:
    return f"earn:{payment_id}" if payment_id else f"earn:{booking_id}"


def earned_notification(user_id: str, key: str, booking_id: str, points: int) -> Notification:
    return Notification(
        idempotency_key=f"points_earned:{key}",
        kind=NotificationKind.POINTS_EARNED,
        user_id=user_id,
        payload={"booking_id": booking_id, "points": points},
    )


@dataclass(frozen=True)
class EarnPlan:
    """What a payment earns, and why."""

    tier: str
    earn_multiplier_pct: int
    currency_per_point: int
    amount_paid: int
    breakdown: earning.EarnBreakdown

    @property
    def points(self) -> int:
        return self.breakdown.total

    def metadata(self) -> dict[str, Any]:
        campaign_lines = [
            line for line in self.breakdown.lines if line.rule.startswith("campaign:")
        ]
        return {
            "rule": "campaign" if campaign_lines else "base",
            "earn_rate_currency_per_point": self.currency_per_point,
            "tier": self.tier,
            "earn_multiplier_pct": self.earn_multiplier_pct,
            "amount_paid": self.amount_paid,
            **self.breakdown.as_metadata(),
        }


# The statements of a new earn run on the driver (loyalty.core.db: a fraction of SQLAlchemy's
# per-statement cost); the rarer paths (replays, adoption, debt, tier changes) stay on SQLAlchemy.
_LOCK_WALLET = db.Statement.of(
    f"SELECT {', '.join(ledger.WalletState.__dataclass_fields__)} FROM wallets "
    "WHERE user_id = :u FOR UPDATE"
)


async def lock_wallet(conn: AsyncConnection, user_id: str) -> ledger.WalletState:
    """The user's wallet (opened on first use), locked for the rest of the transaction: one
    statement when the wallet exists (FOR UPDATE returns the row as it is once locked)."""
    row = await db.fetchrow(conn, _LOCK_WALLET, {"u": user_id})
    if row is None:
        await ledger.open_wallet(conn, user_id)
        row = await db.fetchrow(conn, _LOCK_WALLET, {"u": user_id})
        if row is None:
            raise NoResultFound(f"no wallet for user {user_id!r} after opening it")
    return ledger.WalletState(**{k: row[k] for k in ledger.WalletState.__dataclass_fields__})


@dataclass(frozen=True)
class EarnFacts:
    """What a new earn reads besides the wallet, in one statement after the wallet is locked
    (so it sees every debt and refund written by whoever held the wallet before): the tier
    ladder with its multipliers, the transaction's time, refunds so far, outstanding debt."""

    steps: list[TierStep]
    multipliers: dict[str, int]
    as_of: datetime
    refunded: int
    full_refund: bool
    debt: int

    def multiplier(self, tier: str) -> int:
        if tier not in self.multipliers:  # as the former `scalar_one()` of this tier's row
            raise NoResultFound(f"no tier {tier!r} in loyalty_tiers")
        return self.multipliers[tier]


_EARN_FACTS = db.Statement.of(
    "SELECT code, rank, threshold, basis, earn_multiplier_pct, now() AS as_of, "
    "(SELECT COALESCE(SUM(amount), 0) FROM booking_refunds WHERE booking_id = :b) AS refunded, "
    "(SELECT COALESCE(bool_or(full_refund), false) FROM booking_refunds WHERE booking_id = :b) "
    "AS full_refund, "
    "(SELECT COALESCE(SUM(points), 0) FROM points_debt_entries WHERE user_id = :u) AS debt "
    "FROM (SELECT 1) one LEFT JOIN loyalty_tiers ON true"
)


async def earn_facts(conn: AsyncConnection, user_id: str, booking_id: str) -> EarnFacts:
    rows = await db.fetch(conn, _EARN_FACTS, {"u": user_id, "b": booking_id})
    tiers = [r for r in rows if r["code"] is not None]
    first = rows[0]
    return EarnFacts(
        steps=[
            TierStep(code=r["code"], rank=r["rank"], threshold=r["threshold"], basis=r["basis"])
            for r in tiers
        ],
        multipliers={r["code"]: r["earn_multiplier_pct"] for r in tiers},
        as_of=first["as_of"],
        refunded=int(first["refunded"]),
        full_refund=bool(first["full_refund"]),
        debt=int(first["debt"]),
    )


async def plan_earn(
    conn: AsyncConnection,
    wallet: ledger.WalletState,
    cmd: EarnCommand,
    settings: Settings,
    *,
    multiplier: int | None = None,
) -> EarnPlan:
    if cmd.currency != settings.currency:
        raise ValidationFailed(
            f"amount_paid must be in {settings.currency}",
            currency=cmd.currency,
            expected=settings.currency,
        )
    if multiplier is None:
        multiplier = (
            await conn.execute(
                text("SELECT earn_multiplier_pct FROM loyalty_tiers WHERE code = :c"),
                {"c": wallet.tier},
            )
        ).scalar_one()
    facts = earning.BookingFacts(
        amount_paid=cmd.amount_paid,
        paid_at=cmd.paid_at,
        product_type=cmd.product_type,
        category=cmd.category,
    )
    breakdown = earning.compute_earn(
        facts,
        currency_per_point=settings.earn_rate_currency_per_point,
        tier_code=wallet.tier,
        tier_multiplier_pct=multiplier,
        campaigns=await campaigns.effective_at(conn, cmd.paid_at),
    )
    return EarnPlan(
        wallet.tier, multiplier, settings.earn_rate_currency_per_point, cmd.amount_paid, breakdown
    )


# --- the booking's accrual row -----------------------------------------------------------------


_ACCRUAL_ROW = "SELECT * FROM booking_accruals WHERE booking_id = :b FOR UPDATE"
_ACCRUAL_ROW_ON_DRIVER = db.Statement.of(_ACCRUAL_ROW)


async def accrual_row(conn: AsyncConnection, booking_id: str) -> RowMapping | None:
    return (await conn.execute(text(_ACCRUAL_ROW), {"b": booking_id})).mappings().first()


async def refunds_so_far(conn: AsyncConnection, booking_id: str) -> tuple[int, bool]:
    """Money refunded on the booking so far, and whether any refund was a full one."""
    row = (
        await conn.execute(
            text(
                "SELECT COALESCE(SUM(amount), 0), COALESCE(bool_or(full_refund), false) "
                "FROM booking_refunds WHERE booking_id = :b"
            ),
            {"b": booking_id},
        )
    ).one()
    return int(row[0]), bool(row[1])


def _check_same_booking(row: Row, cmd: EarnCommand) -> None:
    if (row["user_id"], row["amount_paid"], row["currency"]) != (
        cmd.user_id,
        cmd.amount_paid,
        cmd.currency,
    ):
        raise IdempotencyConflict(
            f"booking {cmd.booking_id} already earned on another payment",
            idempotency_key=row["idempotency_key"],
        )


def outcome_of(row: Row, *, replayed: bool, points: int | None = None) -> EarnOutcome:
    status = row["status"]
    if status == "posted" and row["earn_tx_id"] is None:
        status = "nothing_to_earn"
    return EarnOutcome(
        booking_id=row["booking_id"],
        status=status,
        points=points if points is not None else int(row["pending_points"]),
        planned_points=int(row["points"]),
        idempotency_key=row["idempotency_key"],
        tx_id=row["earn_tx_id"],
        pending_until=row["pending_until"],
        replayed=replayed,
    )


async def _posted_points(conn: AsyncConnection, tx_id: int | None) -> int:
    if tx_id is None:
        return 0
    amount = (
        await conn.execute(
            text("SELECT amount FROM wallet_transactions WHERE tx_id = :t"), {"t": tx_id}
        )
    ).scalar_one()
    return int(amount)


_EXISTING_EARN = db.Statement.of(
    "SELECT t.tx_id, t.type, t.amount, t.booking_id, t.payment_id, "
    "t.currency_amount, t.currency, w.user_id FROM wallet_transactions t "
    "JOIN wallets w ON w.wallet_id = t.wallet_id WHERE t.idempotency_key = :k"
)


async def _existing_earn(conn: AsyncConnection, key: str) -> Row | None:
    return await db.fetchrow(conn, _EXISTING_EARN, {"k": key})


@dataclass(frozen=True)
class Accrued:
    """An accrual's outcome, with what the earn endpoint answers when the posting path knows it
    without reading it back."""

    outcome: EarnOutcome
    wallet: ledger.WalletState | None = None  # after the earn, when nothing else moved it
    posting: ledger.Posting | None = None  # the earn, when this call posted (or replayed) it
    notes_recorded: bool = False  # outcome.notifications are already in the outbox


async def accrue(conn: AsyncConnection, cmd: EarnCommand, settings: Settings) -> EarnOutcome:
    """Earn on the booking's payment: post at once, or plan it as pending until
    `cmd.pending_until`. Idempotent by booking and by posting key."""
    return (await accrue_detailed(conn, cmd, settings)).outcome


async def accrue_detailed(conn: AsyncConnection, cmd: EarnCommand, settings: Settings) -> Accrued:
    """accrue, also returning the wallet and posting it already has (for the earn endpoint)."""
    key = earn_key(cmd.booking_id, cmd.payment_id)
    wallet = await lock_wallet(conn, cmd.user_id)
    existing_row = await db.fetchrow(conn, _ACCRUAL_ROW_ON_DRIVER, {"b": cmd.booking_id})
    if existing_row is not None:
        _check_same_booking(existing_row, cmd)
        points = await _reported_points(conn, existing_row)
        outcome = outcome_of(existing_row, replayed=True, points=points)
        if outcome.status == "posted":  # keyed: sent once, whichever path posted the earn
            outcome.notifications = [
                earned_notification(
                    cmd.user_id, outcome.idempotency_key, cmd.booking_id, outcome.points
                )
            ]
        return Accrued(outcome)
    existing = await _existing_earn(conn, key)
    if existing is not None:
        return Accrued(await _adopt(conn, existing, cmd, key))
    facts = await earn_facts(conn, cmd.user_id, cmd.booking_id)
    plan = await plan_earn(conn, wallet, cmd, settings, multiplier=facts.multiplier(wallet.tier))
    # Refunds that arrived before the payment was processed are taken off at once.
    net = plan.points - earning.clawback_target(
        plan.points, cmd.amount_paid, facts.refunded, facts.full_refund
    )
    now = facts.as_of
    status = "posted"
    if net == 0 and plan.points > 0:
        status = "voided"
    elif net > 0 and cmd.pending_until is not None and cmd.pending_until > now:
        status = "pending"
    row = await _insert_accrual(
        conn,
        cmd,
        key=key,
        points=plan.points,
        pending=net if status == "pending" else 0,
        status=status,
        pending_until=cmd.pending_until if status == "pending" else None,
        breakdown=plan.metadata(),
    )
    if status != "posted" or net == 0:
        return Accrued(outcome_of(row, replayed=False, points=net if status == "pending" else 0))
    return await _post(conn, row, net, facts=facts)


_INSERT_ACCRUAL = db.Statement.of(
    "INSERT INTO booking_accruals (booking_id, user_id, payment_id, amount_paid, "
    "currency, points, pending_points, status, pending_until, idempotency_key, "
    "earn_tx_id, breakdown) VALUES (:b, :u, :p, :amount, :currency, :points, "
    ":pending, :status, :until, :key, :tx, CAST(:breakdown AS jsonb)) RETURNING *"
)


async def _insert_accrual(
    conn: AsyncConnection,
    cmd: EarnCommand,
    *,
    key: str,
    points: int,
    pending: int,
    status: str,
    pending_until: datetime | None,
    breakdown: dict[str, Any],
    earn_tx_id: int | None = None,
) -> Row:
    row = await db.fetchrow(
        conn,
        _INSERT_ACCRUAL,
        {
            "b": cmd.booking_id,
            "u": cmd.user_id,
            "p": cmd.payment_id,
            "amount": cmd.amount_paid,
            "currency": cmd.currency,
            "points": points,
            "pending": pending,
            "status": status,
            "until": pending_until,
            "key": key,
            "tx": earn_tx_id,
            "breakdown": json.dumps(breakdown),
        },
    )
    if row is None:
        raise NoResultFound("INSERT ... RETURNING returned no row")
    return row


async def _adopt(conn: AsyncConnection, existing: Row, cmd: EarnCommand, key: str) -> EarnOutcome:
    """The key was posted before the booking had an accrual row (an earn posted before this
    module kept one): record it as the booking's accrual, post nothing."""
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
    row = await _insert_accrual(
        conn,
        cmd,
        key=key,
        points=int(existing["amount"]),
        pending=0,
        status="posted",
        pending_until=None,
        breakdown={},
        earn_tx_id=int(existing["tx_id"]),
    )
    return outcome_of(row, replayed=True, points=int(existing["amount"]))


async def _reported_points(conn: AsyncConnection, row: Row) -> int:
    if row["status"] == "pending":
        return int(row["pending_points"])
    return await _posted_points(conn, row["earn_tx_id"])


# The posted earn's bookkeeping in one statement, when no debt is owed and the tier stays: the
# accrual row marked posted, a pending downgrade cleared if the points keep the tier, the
# notification put in the outbox.
_POSTED = (
    "WITH accrued AS (UPDATE booking_accruals SET status = 'posted', earn_tx_id = :t, "
    "pending_points = 0, updated_at = now() WHERE booking_id = :b), "
    "cleared AS (DELETE FROM wallet_tier_status "
    "WHERE wallet_id = :w AND CAST(:clear AS boolean)) "
    "INSERT INTO notification_outbox (idempotency_key, kind, user_id, payload) VALUES {values} "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)


@functools.lru_cache(maxsize=16)
def _posted_statement(values: str) -> db.Statement:
    return db.Statement.of(_POSTED.format(values=values))


async def _post(
    conn: AsyncConnection, row: Row, points: int, *, facts: EarnFacts | None = None
) -> Accrued:
    """Post the planned earn of an accrual row (status `posted` after this), repay debt first,
    move the tier up if the points reach a higher one. With `facts` (read in this transaction
    after the wallet was locked) a fresh posting skips the reads they answer."""
    metadata = dict(row["breakdown"])
    if points != row["points"]:
        metadata["reduced_by_refunds"] = int(row["points"]) - points
    result = await ledger.earn(
        conn,
        user_id=row["user_id"],
        points=points,
        idempotency_key=row["idempotency_key"],
        booking_id=row["booking_id"],
        payment_id=row["payment_id"],
        currency_amount=int(row["amount_paid"]),
        currency=row["currency"],
        counter_account="issuance:campaign"
        if metadata.get("rule") == "campaign"
        else "issuance:base",
        description=f"earned on booking {row['booking_id']}",
        metadata=metadata,
    )
    notes = [earned_notification(row["user_id"], row["idempotency_key"], row["booking_id"], points)]
    # A fresh posting (not a replay) has no debt repayment yet: with no debt owed there is
    # nothing to repay, and unless the points reach a higher tier, one statement does the rest.
    if facts is not None and facts.debt <= 0 and not result.replayed:
        wallet = result.wallet
        decision = await tier_store.realtime_decision(
            conn,
            Ladder.of(facts.steps),
            wallet_id=wallet.wallet_id,
            tier=wallet.tier,
            lifetime_points=wallet.lifetime_points,
            as_of=facts.as_of,
        )
        if not decision.upgrade:
            values, params = notifications.outbox_values(notes)
            await db.execute(
                conn,
                _posted_statement(values),
                {
                    "t": result.posting.tx_id,
                    "b": row["booking_id"],
                    "w": wallet.wallet_id,
                    "clear": decision.clear_pending,
                    **params,
                },
            )
            outcome = EarnOutcome(
                booking_id=row["booking_id"],
                status="posted",
                points=points,
                planned_points=int(row["points"]),
                idempotency_key=row["idempotency_key"],
                tx_id=result.posting.tx_id,
                replayed=False,
                debt_repaid=0,
                notifications=notes,
            )
            return Accrued(outcome, wallet=wallet, posting=result.posting, notes_recorded=True)
    await conn.execute(
        text(
            "UPDATE booking_accruals SET status = 'posted', earn_tx_id = :t, pending_points = 0, "
            "updated_at = now() WHERE booking_id = :b"
        ),
        {"t": result.posting.tx_id, "b": row["booking_id"]},
    )
    repaid = await repay_debt(conn, row["user_id"], row["idempotency_key"], result.posting)
    change = await tier_store.apply_realtime_upgrade(
        conn, result.wallet.wallet_id, source=row["idempotency_key"]
    )
    if change is not None:  # already in the outbox
        notes.append(change.notification)
    await notifications.enqueue(conn, notes[:1])
    outcome = EarnOutcome(
        booking_id=row["booking_id"],
        status="posted",
        points=points,
        planned_points=int(row["points"]),
        idempotency_key=row["idempotency_key"],
        tx_id=result.posting.tx_id,
        replayed=result.replayed,
        debt_repaid=repaid,
        notifications=notes,
    )
    return Accrued(outcome, posting=result.posting, notes_recorded=True)


async def activate(conn: AsyncConnection, booking_id: str, user_id: str) -> EarnOutcome:
    """The pending period is over: post what is still pending (refunds meanwhile reduced or
    voided it). Idempotent: an accrual already posted or voided is answered as it stands."""
    await lock_wallet(conn, user_id)
    row = await accrual_row(conn, booking_id)
    if row is None:
        raise NotFound(f"no accrual for booking {booking_id}", booking_id=booking_id)
    if row["status"] != "pending":
        outcome = outcome_of(row, replayed=True, points=await _reported_points(conn, row))
        if outcome.status == "posted":  # the notification is keyed: resending it sends nothing
            outcome.notifications = [
                earned_notification(user_id, row["idempotency_key"], booking_id, outcome.points)
            ]
        return outcome
    return (await _post(conn, row, int(row["pending_points"]))).outcome


# --- debt ----------------------------------------------------------------------------------------


async def outstanding_debt(conn: AsyncConnection, user_id: str) -> int:
    owed = (
        await conn.execute(
            text("SELECT COALESCE(SUM(points), 0) FROM points_debt_entries WHERE user_id = :u"),
            {"u": user_id},
        )
    ).scalar_one()
    return int(owed)


async def record_debt_entry(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    key: str,
    booking_id: str | None,
    tx_id: int | None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO points_debt_entries (user_id, points, booking_id, idempotency_key, tx_id) "
            "VALUES (:u, :p, :b, :k, :t) ON CONFLICT (idempotency_key) DO NOTHING"
        ),
        {"u": user_id, "p": points, "b": booking_id, "k": key, "t": tx_id},
    )


async def repay_debt(
    conn: AsyncConnection, user_id: str, earn_key_: str, earn: ledger.Posting
) -> int:
    """Repay what the user owes out of a fresh earn (first call per earn only)."""
    key = f"debt-repay:{earn_key_}"
    done = (
        await conn.execute(
            text("SELECT -points FROM points_debt_entries WHERE idempotency_key = :k"), {"k": key}
        )
    ).scalar_one_or_none()
    if done is not None:
        return int(done)
    repay = min(await outstanding_debt(conn, user_id), earn.amount)
    if repay <= 0:
        return 0
    posted = await ledger.clawback(
        conn,
        user_id=user_id,
        points=repay,
        idempotency_key=key,
        reverses_tx_id=earn.tx_id,
        counter_account=DEBT_REPAYMENT_ACCOUNT,
        description="repays points owed after an earlier refund",
        metadata={"earn_tx_id": earn.tx_id},
    )
    await record_debt_entry(
        conn, user_id=user_id, points=-repay, key=key, booking_id=None, tx_id=posted.posting.tx_id
    )
    return repay


# --- what wallets show ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingAndDebt:
    pending_points: int
    debt_points: int


async def pending_and_debt(conn: AsyncConnection, user_id: str) -> PendingAndDebt:
    row = (
        await conn.execute(
            text(
                "SELECT (SELECT COALESCE(SUM(pending_points), 0) FROM booking_accruals "
                "        WHERE user_id = :u AND status = 'pending'), "
                "       (SELECT COALESCE(SUM(points), 0) FROM points_debt_entries "
                "        WHERE user_id = :u)"
            ),
            {"u": user_id},
        )
    ).one()
    return PendingAndDebt(int(row[0]), int(row[1]))


# --- POST /wallets/{userId}/earn -----------------------------------------------------------------


def _balance(wallet: ledger.WalletState) -> BalanceOut:
    return BalanceOut(
        user_id=wallet.user_id,
        balance=wallet.balance,
        held=wallet.held,
        available=wallet.available,
        tier=wallet.tier,
        lifetime_points=wallet.lifetime_points,
    )


async def earn_on_payment(
    conn: AsyncConnection, user_id: str, body: EarnIn, settings: Settings
) -> EarnOut:
    """The internal earn endpoint: the same accrual as the booking events, posted at once.
    A replay (or a booking that already earned on this payment through its events) answers the
    earn as posted; `posted: false` when nothing was posted (zero points, or still pending)."""
    if body.currency != settings.currency:
        raise ValidationFailed(
            f"amount_paid must be in {settings.currency}",
            currency=body.currency,
            expected=settings.currency,
        )
    accrued = await accrue_detailed(
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
    if not accrued.notes_recorded:  # delivered by a workflow or the outbox relay
        await notifications.enqueue(conn, outcome.notifications)
    wallet = accrued.wallet or await ledger.get_wallet(conn, user_id)
    posting = accrued.posting
    if posting is None and outcome.tx_id is not None:
        posting = (
            await ledger.list_transactions(
                conn, wallet.wallet_id, limit=1, before_tx_id=outcome.tx_id + 1
            )
        )[0]
    meta: dict[str, Any] = posting.metadata if posting is not None else {}
    rule_source = meta
    if not rule_source:
        accrual = await accrual_row(conn, body.booking_id)
        rule_source = dict(accrual["breakdown"]) if accrual is not None else {}
    return EarnOut(
        points=outcome.points,
        posted=outcome.status == "posted",
        replayed=outcome.replayed,
        idempotency_key=outcome.idempotency_key,
        rule=EarnRuleOut(
            earn_rate_currency_per_point=rule_source.get(
                "earn_rate_currency_per_point", settings.earn_rate_currency_per_point
            ),
            tier=rule_source.get("tier", wallet.tier),
            earn_multiplier_pct=rule_source.get("earn_multiplier_pct", 100),
        ),
        transaction=TransactionOut.model_validate(posting) if posting is not None else None,
        wallet=_balance(wallet),
    )
