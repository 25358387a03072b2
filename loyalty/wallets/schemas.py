"""Request and response models of the wallet API (and any other caller that wants them).

Inputs are strict and closed: integers must be JSON integers (no floats, no numeric strings, no
booleans), unknown fields are rejected, and every string and number is bounded. Outputs carry
points and money as integers in minor units, never floats.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from loyalty.core.fields import MAX_POINTS, ExternalId
from loyalty.core.text import NO_NUL
from loyalty.ledger.schemas import BalanceOut, TransactionOut
from loyalty.ledger.types import TxType
from loyalty.tiers.schemas import TierStatusOut


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


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
