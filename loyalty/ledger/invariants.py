"""Ledger invariants, checkable at any time.

    python -m loyalty.ledger.invariants [--database-url URL] [--hold-grace-seconds N]

prints each violation and exits 1 if there is any, 0 otherwise. Besides the ledger's own
consistency (CHECKS), it reports stuck money: a hold still open more than the grace
(HOLD_EXPIRY_GRACE_SECONDS) after its expiry. The check that also needs Temporal (a running
checkout whose hold is already resolved) is in loyalty.ledger.stuck_checkouts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.db import make_engine
from loyalty.core.settings import get_settings
from loyalty.ledger import liability

# Each check returns the rows that break it; an empty result means the invariant holds.
CHECKS: dict[str, str] = {
    "balance equals the sum of posted amounts": """
        SELECT w.user_id, w.balance AS actual, COALESCE(SUM(t.amount), 0) AS expected
        FROM wallets w LEFT JOIN wallet_transactions t ON t.wallet_id = w.wallet_id
        GROUP BY w.wallet_id HAVING w.balance <> COALESCE(SUM(t.amount), 0)""",
    "held equals the sum of held deltas": """
        SELECT w.user_id, w.held AS actual, COALESCE(SUM(t.held_delta), 0) AS expected
        FROM wallets w LEFT JOIN wallet_transactions t ON t.wallet_id = w.wallet_id
        GROUP BY w.wallet_id HAVING w.held <> COALESCE(SUM(t.held_delta), 0)""",
    "held equals the open holds": """
        SELECT w.user_id, w.held AS actual, COALESCE(SUM(h.amount), 0) AS expected
        FROM wallets w LEFT JOIN holds h ON h.wallet_id = w.wallet_id AND h.status = 'open'
        GROUP BY w.wallet_id HAVING w.held <> COALESCE(SUM(h.amount), 0)""",
    "available is never negative": """
        SELECT user_id, balance - held AS actual, 0 AS expected
        FROM wallets WHERE balance - held < 0 OR held < 0""",
    "available equals the points left in lots": """
        SELECT w.user_id, COALESCE(l.remaining, 0) AS actual, w.balance - w.held AS expected
        FROM wallets w LEFT JOIN (
            SELECT wallet_id, SUM(remaining) AS remaining FROM point_lots GROUP BY wallet_id
        ) l ON l.wallet_id = w.wallet_id
        WHERE COALESCE(l.remaining, 0) <> w.balance - w.held""",
    "each lot holds its points less what moved out of it": """
        SELECT l.lot_id::text AS user_id, l.remaining AS actual,
               l.points + COALESCE(SUM(m.points), 0) AS expected
        FROM point_lots l LEFT JOIN lot_movements m ON m.lot_id = l.lot_id
        GROUP BY l.lot_id HAVING l.remaining <> l.points + COALESCE(SUM(m.points), 0)""",
    "every hold is resolved by exactly the row its status says": """
        SELECT h.hold_id::text AS user_id, h.status AS actual,
               string_agg(t.type, ',') AS expected
        FROM holds h LEFT JOIN wallet_transactions t
            ON t.hold_id = h.hold_id AND t.type IN ('capture', 'release')
        GROUP BY h.hold_id, h.status
        HAVING NOT (
            (h.status = 'open' AND COUNT(t.tx_id) = 0)
            OR (h.status = 'captured' AND COUNT(t.tx_id) = 1 AND MIN(t.type) = 'capture')
            OR (h.status = 'released' AND COUNT(t.tx_id) = 1 AND MIN(t.type) = 'release'))""",
    "refunds never exceed the spending they reverse": """
        SELECT s.tx_id::text AS user_id, SUM(r.amount) AS actual, -s.amount AS expected
        FROM wallet_transactions s JOIN wallet_transactions r
            ON r.reverses_tx_id = s.tx_id AND r.type = 'refund'
        GROUP BY s.tx_id, s.amount HAVING SUM(r.amount) > -s.amount""",
    # Points kept (loyalty.tiers.rules): earned, less clawed back, less owed after a refund (a
    # repayment's clawback and its negative debt entry cancel); never below zero.
    "lifetime points equal the points kept": """
        SELECT w.user_id, w.lifetime_points AS actual, k.points AS expected
        FROM wallets w
        LEFT JOIN (SELECT wallet_id, SUM(amount) AS points FROM wallet_transactions
                   WHERE type IN ('earn', 'clawback') GROUP BY wallet_id) t
            ON t.wallet_id = w.wallet_id
        LEFT JOIN (SELECT user_id, SUM(points) AS points FROM points_debt_entries
                   GROUP BY user_id) d ON d.user_id = w.user_id
        CROSS JOIN LATERAL (
            SELECT GREATEST(0, COALESCE(t.points, 0) - COALESCE(d.points, 0)) AS points) k
        WHERE w.lifetime_points <> k.points""",
    # The book value (migration 0013): its points (held ones on a hold or release) at its rate.
    "every row's value is its points at its rate": """
        SELECT tx_id::text AS user_id, value_amount AS actual,
               CAST(round(CASE WHEN amount <> 0 THEN amount ELSE held_delta END * value_rate)
                    AS bigint) AS expected
        FROM wallet_transactions
        WHERE value_amount
            <> round(CASE WHEN amount <> 0 THEN amount ELSE held_delta END * value_rate)""",
}

# The liability report (loyalty.ledger.liability) adds up the ledger by counter account: its
# total must be what the wallets hold, its held points their held points, and its points in
# lots their available points. Computed in Python from the report itself, hence apart.
LIABILITY = "the liability report's totals equal the wallets' sums"


async def liability_violations(conn: AsyncConnection) -> list[Violation]:
    """The report of now against the wallets table (one statement, one snapshot)."""
    found = await liability.reconcile(conn, liability.Valuation("", 1))
    report = found.report
    pairs = {
        "outstanding points": (report.outstanding.points, found.wallets_balance),
        "held points": (report.held.points, found.wallets_held),
        "points in lots": (
            report.expiring.in_lots.points,
            found.wallets_balance - found.wallets_held,
        ),
    }
    return [
        Violation(LIABILITY, subject, actual, expected)
        for subject, (actual, expected) in pairs.items()
        if actual != expected
    ]


# Stuck money: every hold has an owner (a checkout saga) that resolves it by its expiry, so one
# still open well past it will not be resolved by anyone. Depends on the clock, hence apart.
STUCK_HOLDS = "no hold is open past its expiry plus the grace"
_STUCK_HOLDS_SQL = """
    SELECT h.hold_id::text, h.amount, w.user_id, h.booking_id, h.expires_at,
           h.expires_at + CAST(:grace AS interval) AS deadline
    FROM holds h JOIN wallets w ON w.wallet_id = h.wallet_id
    WHERE h.status = 'open'
      AND h.expires_at + CAST(:grace AS interval) < COALESCE(CAST(:now AS timestamptz), now())
    ORDER BY h.expires_at"""


def check_names(*, stuck_holds: bool) -> list[str]:
    """The names of the checks find_violations runs (with or without the stuck-hold check)."""
    return [*CHECKS, LIABILITY, *([STUCK_HOLDS] if stuck_holds else [])]


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    actual: object
    expected: object

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: is {self.actual}, expected {self.expected}"


async def find_violations(
    conn: AsyncConnection,
    *,
    limit: int = 100,
    hold_grace: timedelta | None = None,
    now: datetime | None = None,
) -> list[Violation]:
    """The rows that break each check, at most `limit` per check.

    With `hold_grace`, also every hold still open more than that after its expiry, as of `now`
    (the database's clock when None). Without it that check is left out: it is the one that
    depends on the clock, and a database where holds are placed without a saga to resolve them
    (the test suite's, shared by every test) would report holds no test is responsible for."""
    violations: list[Violation] = []
    for name, sql in CHECKS.items():
        rows = (await conn.execute(text(f"{sql} LIMIT {limit}"))).all()
        violations += [Violation(name, str(r[0]), r[1], r[2]) for r in rows]
    violations += await liability_violations(conn)
    if hold_grace is not None:
        stuck = text(f"{_STUCK_HOLDS_SQL} LIMIT {limit}")
        rows = (await conn.execute(stuck, {"grace": hold_grace, "now": now})).all()
        violations += [
            Violation(
                STUCK_HOLDS,
                hold_id,
                f"open: {points} points of {user_id}{_for(booking_id)}, expired {_utc(expires_at)}",
                f"captured or released by {_utc(deadline)}",
            )
            for hold_id, points, user_id, booking_id, expires_at, deadline in rows
        ]
    return violations


def _for(booking_id: str | None) -> str:
    return "" if booking_id is None else f" for booking {booking_id}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


async def _main(database_url: str, hold_grace: timedelta) -> int:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            # One snapshot for all checks, so concurrent postings cannot show as violations.
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            violations = await find_violations(conn, hold_grace=hold_grace)
            wallets = (await conn.execute(text("SELECT count(*) FROM wallets"))).scalar_one()
    finally:
        await engine.dispose()
    for v in violations:
        print(f"VIOLATION {v}")
    print(
        f"checked {len(check_names(stuck_holds=True))} invariants over {wallets} wallets: "
        f"{'OK' if not violations else f'{len(violations)} violation(s)'}"
    )
    return 1 if violations else 0


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=settings.database_url)
    parser.add_argument(
        "--hold-grace-seconds",
        type=int,
        default=settings.hold_expiry_grace_seconds,
        help="report holds open longer than this past their expiry "
        "(default HOLD_EXPIRY_GRACE_SECONDS, %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("DATABASE_URL is not set (or pass --database-url)")
    if args.hold_grace_seconds < 0:
        parser.error("--hold-grace-seconds must not be negative")
    grace = timedelta(seconds=args.hold_grace_seconds)
    sys.exit(asyncio.run(_main(args.database_url, grace)))


if __name__ == "__main__":
    main()
