"""The ledger: the one way points move.

Every posting kind (earn, adjust, burn, refund, clawback, expire_lot; hold, capture, release) is
one PostgreSQL function (migrations 0007 and 0012), which holds the posting protocol once:
idempotency key and request hash, the guard on available points, one resolution per hold. The
Python side (postings, holds) only fingerprints the request and makes the call; refusals come
back as LoyaltyErrors (calls). `wallet_transactions` is append-only: corrections are new rows.

    from loyalty import ledger
    async with db.autocommit(engine) as conn:
        result = await ledger.earn(conn, user_id="u1", points=150, idempotency_key="earn:p1")
"""

from loyalty.ledger.accounts import find_wallet, get_wallet, lock_wallet, open_wallet
from loyalty.ledger.calls import Alongside
from loyalty.ledger.history import list_transactions, posting
from loyalty.ledger.holds import capture, get_hold, hold, hold_id_for, release
from loyalty.ledger.lots import Expiring, Lot, due_lots, lots_of, next_expiring
from loyalty.ledger.postings import adjust, burn, clawback, earn, expire_lot, refund
from loyalty.ledger.types import (
    MAX_POINTS,
    TX_TYPES,
    HoldState,
    Posting,
    PostingResult,
    TxType,
    WalletState,
)

__all__ = [
    "MAX_POINTS",
    "TX_TYPES",
    "Alongside",
    "Expiring",
    "HoldState",
    "Lot",
    "Posting",
    "PostingResult",
    "TxType",
    "WalletState",
    "adjust",
    "burn",
    "capture",
    "clawback",
    "due_lots",
    "earn",
    "expire_lot",
    "find_wallet",
    "get_hold",
    "get_wallet",
    "hold",
    "hold_id_for",
    "list_transactions",
    "lock_wallet",
    "lots_of",
    "next_expiring",
    "open_wallet",
    "posting",
    "refund",
    "release",
]
