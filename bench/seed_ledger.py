"""A seeded ledger for the benchmarks (and tests) that need many wallets: N wallets and M ledger
rows written in a few set-based statements (generate_series), consistent with every ledger
invariant (loyalty.ledger.invariants), point lots included.

    .venv/bin/python -m bench.seed_ledger --database-url URL [--wallets 1000000]
        [--transactions 10000000] [--due-share 0.03] [--prefix seed]

Connect as the schema's owner (MIGRATION_DATABASE_URL): the rows are written directly, backdated,
which the application role may not do. Never point it at production.

Each wallet `<prefix>-<i>` gets M/N rows (the first M mod N wallets one more): earns spread over
the last 700 days, each opening a lot, and with two rows or more, a last row that is a burn drawn
from its first lot (a quarter of the burns spend that lot whole, the rest half of it). A lot is
due (expired at the seeding instant, by up to 30 days) with probability `due_share`; the others
expire up to 700 days ahead, so some fall in any reminder window. Amounts, dates and which lots
are due follow from hashes of (i, j): the same arguments seed the same ledger.

`seed(conn, ...)` does it on a connection the caller commits (the owner's), and answers what it
wrote; `python -m bench.seed_ledger` commits it and prints that.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core import db

# i: the wallet, j: its row (1..k); the last of k >= 2 rows is a burn from the first lot.
_ROWS = """
CREATE TEMPORARY TABLE seed_tx ON COMMIT DROP AS
SELECT w.i, j, (j = w.k AND w.k >= 2) AS is_burn,
       CASE WHEN j = w.k AND w.k >= 2 THEN -w.burn
            ELSE 1 + (hashint8(w.i * 64 + j) & 2147483647) % 2000 END AS amount,
       CASE WHEN j = 1 AND w.k >= 2 THEN w.burn ELSE 0 END AS drawn,
       CASE WHEN j = w.k AND w.k >= 2 THEN now() - interval '30 minutes'
            ELSE now() - make_interval(secs => 3600 + (hashint8(w.i * 64 + j + 7) & 2147483647)
                                                     % (700 * 86400)) END AS created_at,
       CASE WHEN (hashint8(w.i * 64 + j + 13) & 2147483647) % 1000000 < :due_ppm
            THEN now() - make_interval(secs => 1 + (hashint8(w.i * 64 + j + 17) & 2147483647)
                                                  % (30 * 86400))
            ELSE now() + make_interval(secs => 60 + (hashint8(w.i * 64 + j + 17) & 2147483647)
                                                   % (700 * 86400)) END AS expires_at
FROM (
    SELECT i, k, CASE WHEN hashint8(i) & 3 = 0 THEN first ELSE greatest(1, first / 2) END AS burn
    FROM (SELECT i, :base + (i <= :extra)::int AS k,
                 1 + (hashint8(i * 64 + 1) & 2147483647) % 2000 AS first
          FROM generate_series(1, :wallets) AS i) AS sizes
) AS w, generate_series(1, w.k) AS j"""
_WALLETS = """
INSERT INTO wallets (user_id, balance, lifetime_points)
SELECT :prefix || '-' || i, sum(amount), sum(amount) FILTER (WHERE NOT is_burn)
FROM seed_tx GROUP BY i"""
_POSTED = (
    "CREATE TEMPORARY TABLE seed_posted (tx_id bigint, wallet_id uuid, i int, j int) ON COMMIT DROP"
)
_TRANSACTIONS = """
WITH posted AS (
    INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account, idempotency_key,
                                     request_hash, description, created_at)
    SELECT w.wallet_id, CASE WHEN s.is_burn THEN 'burn' ELSE 'earn' END, s.amount,
           CASE WHEN s.is_burn THEN 'redemption' ELSE 'issuance:base' END,
           :prefix || ':' || s.i || ':' || s.j, 'seed', 'seeded ledger', s.created_at
    FROM seed_tx s JOIN wallets w ON w.user_id = :prefix || '-' || s.i
    ORDER BY s.i, s.j
    RETURNING tx_id, wallet_id, idempotency_key
)
INSERT INTO seed_posted
SELECT tx_id, wallet_id, split_part(idempotency_key, ':', 2)::int,
       split_part(idempotency_key, ':', 3)::int
FROM posted"""
_LOTS = """
INSERT INTO point_lots (wallet_id, opened_by_tx_id, points, remaining, expires_at, created_at)
SELECT p.wallet_id, p.tx_id, s.amount, s.amount - s.drawn, s.expires_at, s.created_at
FROM seed_posted p JOIN seed_tx s ON s.i = p.i AND s.j = p.j
WHERE NOT s.is_burn"""
_MOVEMENTS = """
INSERT INTO lot_movements (tx_id, lot_id, points, created_at)
SELECT b.tx_id, l.lot_id, s.amount, s.created_at
FROM seed_posted b
JOIN seed_tx s ON s.i = b.i AND s.j = b.j AND s.is_burn
JOIN seed_posted e ON e.i = b.i AND e.j = 1
JOIN point_lots l ON l.opened_by_tx_id = e.tx_id"""
_SUMMARY = """
SELECT count(*) AS lots,
       count(*) FILTER (WHERE l.remaining > 0 AND l.expires_at <= now()) AS due_lots,
       count(DISTINCT l.wallet_id) FILTER (WHERE l.remaining > 0 AND l.expires_at <= now())
           AS due_wallets,
       COALESCE(sum(l.remaining) FILTER (WHERE l.remaining > 0 AND l.expires_at <= now()), 0)
           AS due_points
FROM point_lots l JOIN wallets w ON w.wallet_id = l.wallet_id
WHERE w.user_id LIKE :prefix || '-%'"""
TABLES = ("wallets", "wallet_transactions", "point_lots", "lot_movements")


@dataclass(frozen=True)
class Seeded:
    wallets: int
    transactions: int
    lots: int
    due_lots: int  # holding points and due at the seeding instant
    due_wallets: int
    due_points: int
    seconds: float

    def line(self) -> str:
        return (
            f"{self.wallets:,} wallets, {self.transactions:,} transactions, {self.lots:,} lots "
            f"({self.due_lots:,} due, of {self.due_wallets:,} wallets, {self.due_points:,} "
            f"points) in {self.seconds:.1f} s"
        )


async def seed(
    conn: AsyncConnection,
    *,
    wallets: int,
    transactions: int,
    due_share: float = 0.03,
    prefix: str = "seed",
) -> Seeded:
    """Write the ledger on `conn` (the owner's, in a transaction the caller commits)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", prefix):
        raise ValueError("prefix: 1 to 40 letters, digits, '_', '.' or '-' (no ':')")
    if wallets < 1 or transactions < wallets:
        raise ValueError("at least one wallet, and at least one transaction per wallet")
    if not 0 <= due_share <= 1:
        raise ValueError("due_share is a share: between 0 and 1")
    started = time.perf_counter()
    params = {
        "wallets": wallets,
        "base": transactions // wallets,
        "extra": transactions % wallets,
        "due_ppm": round(due_share * 1_000_000),
        "prefix": prefix,
    }
    await conn.execute(text("SET LOCAL synchronous_commit = off"))
    await conn.execute(text("SET LOCAL work_mem = '256MB'"))
    for statement in (_ROWS, _WALLETS, _POSTED, _TRANSACTIONS, _LOTS, _MOVEMENTS):
        await conn.execute(text(statement), params)
    summary = (await conn.execute(text(_SUMMARY), {"prefix": prefix})).mappings().one()
    return Seeded(
        wallets=wallets,
        transactions=transactions,
        seconds=time.perf_counter() - started,
        **{k: int(v) for k, v in summary.items()},
    )


async def analyze(conn: AsyncConnection) -> None:
    """VACUUM ANALYZE the seeded tables (`conn` in autocommit): fresh statistics for the planner
    and a visibility map for index-only scans."""
    for table in TABLES:
        await conn.execute(text(f"VACUUM ANALYZE {table}"))


async def seed_database(
    url: str, *, wallets: int, transactions: int, due_share: float, prefix: str
) -> Seeded:
    """Seed, commit and analyze the database at `url` (the owner's)."""
    engine = db.make_engine(url, pool_size=1)
    try:
        async with db.transaction(engine) as conn:
            seeded = await seed(
                conn,
                wallets=wallets,
                transactions=transactions,
                due_share=due_share,
                prefix=prefix,
            )
        async with db.autocommit(engine) as conn:
            await analyze(conn)
    finally:
        await engine.dispose()
    return seeded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wallets", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument(
        "--due-share", type=float, default=0.03, help="share of lots due (default %(default)s)"
    )
    parser.add_argument("--prefix", default="seed", help="user ids <prefix>-<i>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="the schema owner's URL")
    add_arguments(parser)
    args = parser.parse_args()
    seeded = asyncio.run(
        seed_database(
            args.database_url,
            wallets=args.wallets,
            transactions=args.transactions,
            due_share=args.due_share,
            prefix=args.prefix,
        )
    )
    print(f"seeded {seeded.line()}")


if __name__ == "__main__":
    main()
