"""Wallets as the ledger keeps them: find, open (the posting functions' own `ledger_wallet`, so a
wallet is opened one way whoever opens it) and lock."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import WalletNotFound
from loyalty.ledger.calls import call
from loyalty.ledger.types import WalletState

_COLUMNS = ", ".join(WalletState.__dataclass_fields__)
_FIND = text(f"SELECT {_COLUMNS} FROM wallets WHERE user_id = :u")
_LOCK = text(f"SELECT {_COLUMNS} FROM wallets WHERE user_id = :u FOR UPDATE")
# Whether this transaction wrote the wallet's row: an xid is assigned to a transaction only when
# it writes, and the row's xmin is the transaction that inserted it.
_OPENED_HERE = text(
    "SELECT xmin = pg_current_xact_id_if_assigned()::xid FROM wallets WHERE user_id = :u"
)


async def find_wallet(conn: AsyncConnection, user_id: str) -> WalletState | None:
    row = (await conn.execute(_FIND, {"u": user_id})).mappings().first()
    return WalletState.of(row) if row else None


async def get_wallet(conn: AsyncConnection, user_id: str) -> WalletState:
    wallet = await find_wallet(conn, user_id)
    if wallet is None:
        raise WalletNotFound(f"no wallet for user {user_id!r}", user_id=user_id)
    return wallet


async def open_wallet(conn: AsyncConnection, user_id: str) -> WalletState:
    """The user's wallet, opened on the lowest tier if it does not exist yet."""
    return WalletState.of(await call(conn, "ledger_wallet", user_id=user_id, open=True))


async def enrol(conn: AsyncConnection, user_id: str) -> tuple[WalletState, bool]:
    """The user's wallet, opened on the lowest tier if it does not exist yet, and whether this
    call opened it. Run it in a transaction, before any other write to the wallet: two
    concurrent enrolments of one user both get the wallet, and exactly one is told it opened it."""
    wallet = await open_wallet(conn, user_id)
    opened = (await conn.execute(_OPENED_HERE, {"u": user_id})).scalar_one()
    return wallet, bool(opened)


async def lock_wallet(conn: AsyncConnection, user_id: str) -> WalletState:
    """The user's wallet (opened on first use), locked for the rest of the transaction: work
    that reads a wallet before it posts (an accrual, a refund) runs one at a time per wallet."""
    row = (await conn.execute(_LOCK, {"u": user_id})).mappings().first()
    if row is None:
        await open_wallet(conn, user_id)
        row = (await conn.execute(_LOCK, {"u": user_id})).mappings().one()
    return WalletState.of(row)
