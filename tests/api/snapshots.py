"""What a refused request must leave exactly as it was: the ledger's row counts and one wallet's
balances. Compare a snapshot taken before the request with one taken after."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_COUNTS = text(
    "SELECT (SELECT count(*) FROM wallet_transactions), (SELECT count(*) FROM wallets), "
    "(SELECT count(*) FROM holds)"
)
_WALLET = text("SELECT balance, held, lifetime_points, version FROM wallets WHERE user_id = :u")


@dataclass(frozen=True)
class LedgerSnapshot:
    rows: int
    wallets: int
    holds: int
    wallet: tuple[int, int, int, int] | None  # balance, held, lifetime, version of one user


async def snapshot(engine: AsyncEngine, user_id: str | None = None) -> LedgerSnapshot:
    async with engine.connect() as conn:
        rows, wallets, holds = (await conn.execute(_COUNTS)).one()
        wallet = None
        if user_id is not None:
            row = (await conn.execute(_WALLET, {"u": user_id})).first()
            wallet = (row[0], row[1], row[2], row[3]) if row else None
    return LedgerSnapshot(rows, wallets, holds, wallet)
