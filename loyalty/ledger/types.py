"""What the ledger hands back: the wallet's state, a posting, a hold. Plain data."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from loyalty.core.fields import MAX_POINTS as MAX_POINTS  # re-exported: the ledger's bound

TxType = Literal[
    "earn", "burn", "refund", "adjustment", "hold", "capture", "release", "expire", "clawback"
]
TX_TYPES: tuple[TxType, ...] = (
    "earn",
    "burn",
    "refund",
    "adjustment",
    "hold",
    "capture",
    "release",
    "expire",
    "clawback",
)


@dataclass(frozen=True)
class WalletState:
    wallet_id: uuid.UUID
    user_id: str
    balance: int  # posted points
    held: int  # reserved by open holds
    tier: str
    lifetime_points: int  # points kept: earned, less what refunds took back (owed included)
    version: int  # moves with every posting
    created_at: datetime
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.held

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> WalletState:
        """The wallet's columns of a row that has them (a wallets row, a facts row ...)."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Posting:
    """One row of the append-only ledger."""

    tx_id: int
    wallet_id: uuid.UUID
    type: str
    amount: int  # signed change to the posted balance
    held_delta: int  # signed change to the held points (holds move only these)
    currency_amount: int | None
    currency: str | None
    counter_account: str  # where the points came from or went: issuance:*, redemption, ...
    booking_id: str | None
    payment_id: str | None
    hold_id: uuid.UUID | None
    reverses_tx_id: int | None  # a refund or clawback names the posting it (partly) reverses
    idempotency_key: str
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime
    # The row's book value (migration 0013's trigger values every row as it is inserted). Read
    # with the row from the table; a posting function's answer does not carry it (None).
    value_amount: int | None = None  # minor units of value_currency, signed like the points
    value_rate: Decimal | None = None  # minor units per point
    value_currency: str | None = None
    rate_id: int | None = None  # the point rate in force at created_at
    value_campaign_id: str | None = None  # valued at this campaign's own rate instead


@dataclass(frozen=True)
class PostingResult:
    posting: Posting
    wallet: WalletState  # after the posting (as it stands now, for a replay)
    replayed: bool  # the key had already been posted with this request: nothing moved


@dataclass(frozen=True)
class HoldState:
    hold_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    booking_id: str | None
    status: str  # open, captured or released
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None
