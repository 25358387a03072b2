"""How the API shows ledger rows and balances. Points and money are integers (minor units)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class PostingOut(BaseModel):
    transaction: TransactionOut
    wallet: BalanceOut
    replayed: bool = Field(description="true when this idempotency key had already been posted")
