"""How the API shows ledger rows and balances. Points and money are integers (minor units)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loyalty.core.fields import CurrencyCode, Instant, PointValue, PointValueOut
from loyalty.ledger.types import WalletState


class BalanceOut(BaseModel):
    user_id: str
    balance: int = Field(description="posted points")
    held: int = Field(description="points reserved by open holds")
    available: int = Field(description="balance - held: what can be spent now")
    tier: str
    lifetime_points: int

    @classmethod
    def of(cls, wallet: WalletState) -> BalanceOut:
        return cls(
            user_id=wallet.user_id,
            balance=wallet.balance,
            held=wallet.held,
            available=wallet.available,
            tier=wallet.tier,
            lifetime_points=wallet.lifetime_points,
        )


class TransactionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tx_id: int
    type: str
    amount: int = Field(description="signed change to the posted balance, in points")
    held_delta: int = Field(description="signed change to the held points")
    currency_amount: int | None = Field(description="money amount in minor units, if any")
    currency: str | None
    counter_account: str
    booking_id: str | None
    payment_id: str | None
    hold_id: uuid.UUID | None
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime


class ValuedTransactionOut(TransactionOut):
    """A ledger row as listed: with its book value, which the database gives every row when it
    is posted (docs/architecture.md, "Value on every row")."""

    value_amount: int = Field(
        description="the row's points at its rate, in minor units of value_currency, rounded "
        "half away from zero; signed like the points (on a hold or release, the held points)"
    )
    value_rate: PointValueOut = Field(description="minor units per point the row was valued at")
    value_currency: str
    rate_id: int = Field(description="the point rate in force when the row was posted")
    value_campaign_id: str | None = Field(
        description="set when the row was valued at this campaign's own rate instead"
    )


class PostingOut(BaseModel):
    transaction: TransactionOut
    wallet: BalanceOut
    replayed: bool = Field(description="true when this idempotency key had already been posted")


# --- point rates -------------------------------------------------------------------------------


class RateIn(BaseModel):
    # Not strict: the start comes as ISO text (the value is checked as text by its own type).
    model_config = ConfigDict(extra="forbid")

    starts_at: Instant = Field(description="when the rate takes over; not in the past")
    currency: CurrencyCode
    point_value_minor: PointValue


class RateOut(BaseModel):
    rate_id: int
    starts_at: datetime | None = Field(description="null: from the beginning (the base rate)")
    currency: str
    point_value_minor: PointValueOut
    in_force: bool = Field(description="the rate that values postings now")
    created_by: str
    created_at: datetime
