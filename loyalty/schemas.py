"""Request and response models of the wallet API (and any other caller that wants them).

Inputs are strict and closed: integers must be JSON integers (no floats, no numeric strings, no
booleans), unknown fields are rejected, and every string and number is bounded. Outputs carry
points and money as integers in minor units, never floats.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from loyalty.core.text import NO_NUL
from loyalty.tier_schemas import TierStatusOut

MAX_POINTS = 10**12  # the ledger's own bound (loyalty.ledger.MAX_POINTS)
MAX_AMOUNT_MINOR = 10**15  # far above any single payment, far below bigint overflow

TxType = Literal[
    "earn", "burn", "refund", "adjustment", "hold", "capture", "release", "expire", "clawback"
]

# Ids that come from other systems: printable ASCII without spaces, bounded.
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    """Every error response: a stable machine code, a human message, optional details."""

    code: str = Field(examples=["wallet_not_found"])
    message: str
    details: dict[str, Any] | None = None


# --- wallets ---------------------------------------------------------------------------------


class TierOut(BaseModel):
    code: str
    name: str
    rank: int
    earn_multiplier_pct: int = Field(description="earn multiplier in percent (150 = 1.5x)")


class NextTierOut(BaseModel):
    code: str
    name: str
    threshold: int = Field(description="points needed on the tier's basis")
    basis: str = Field(description="lifetime or trailing_12m")
    basis_points: int = Field(description="the wallet's points on that basis today")
    points_to_go: int = Field(description="points still to earn to reach the tier (>= 0)")


class BalanceOut(BaseModel):
    user_id: str
    balance: int = Field(description="posted points")
    held: int = Field(description="points reserved by open holds")
    available: int = Field(description="balance - held: what can be spent now")
    tier: str
    lifetime_points: int


class WalletOut(BalanceOut):
    wallet_id: uuid.UUID
    pending_points: int = Field(
        default=0, description="earned but pending (end of stay or refund window); not in balance"
    )
    debt_points: int = Field(
        default=0, description="points owed after a refund's clawback; later earns repay it first"
    )
    tier_details: TierOut
    next_tier: NextTierOut | None = Field(description="null at the top tier")
    tier_status: TierStatusOut | None = Field(
        default=None, description="tier basis, progress, next evaluation, pending downgrade"
    )
    created_at: datetime
    updated_at: datetime


# --- transactions ----------------------------------------------------------------------------


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


class TransactionPage(BaseModel):
    items: list[TransactionOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class TransactionQuery(BaseModel):
    """Filters and paging of a wallet's history. Datetimes need a timezone offset."""

    model_config = ConfigDict(extra="forbid")

    cursor: str | None = Field(default=None, max_length=64, description="from `next_cursor`")
    limit: int = Field(default=50, ge=1, le=200)
    type: list[TxType] = Field(default_factory=list, max_length=9, description="repeatable")
    since: AwareDatetime | None = Field(default=None, description="created at or after")
    until: AwareDatetime | None = Field(default=None, description="created before")
    booking_id: ExternalId | None = None


class AdjustmentIn(_Input):
    points: int = Field(
        ge=-MAX_POINTS, le=MAX_POINTS, description="signed, non-zero: credit or debit"
    )
    reason: Annotated[
        str,
        StringConstraints(min_length=1, max_length=500, strip_whitespace=True, pattern=NO_NUL),
    ]

    @field_validator("points")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("points must not be zero")
        return value


class PostingOut(BaseModel):
    transaction: TransactionOut
    wallet: BalanceOut
    replayed: bool = Field(description="true when this idempotency key had already been posted")


# --- earn ------------------------------------------------------------------------------------


class EarnIn(_Input):
    booking_id: ExternalId
    payment_id: ExternalId | None = None
    amount_paid: int = Field(ge=0, le=MAX_AMOUNT_MINOR, description="minor units of `currency`")
    currency: CurrencyCode
    product_type: ExternalId | None = Field(default=None, description="for campaign filters")
    category: ExternalId | None = Field(default=None, description="for campaign filters")


class EarnRuleOut(BaseModel):
    earn_rate_currency_per_point: int
    tier: str
    earn_multiplier_pct: int


class EarnOut(BaseModel):
    points: int = Field(description="points earned (0 when the payment is below one point)")
    posted: bool = Field(description="false when nothing was posted (zero points)")
    replayed: bool
    idempotency_key: str
    rule: EarnRuleOut
    transaction: TransactionOut | None
    wallet: BalanceOut


# --- health ----------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    temporal: Literal["connected", "not_connected"] = Field(
        description="whether the API holds a Temporal client yet (it connects on first use)"
    )
