"""Request and response models of the wallet and customer endpoints.

Bodies are strict and closed: integers must be JSON integers (no floats, no numeric strings, no
booleans) and unknown fields are rejected; queries refuse unknown parameters too. Every string
and number is bounded. Outputs carry points and money as integers in minor units, never floats.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from loyalty.core.fields import MAX_POINTS, ExternalId, Instant, Reason
from loyalty.ledger.postings import MAX_VALIDITY_MONTHS
from loyalty.ledger.schemas import BalanceOut, ValuedTransactionOut
from loyalty.ledger.types import TxType
from loyalty.tiers.schemas import TierCode, TierStatusOut


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- wallets ---------------------------------------------------------------------------------


class TierDetailsOut(BaseModel):
    """The wallet's current tier (GET /tiers has the whole ladder)."""

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


class NextExpiryOut(BaseModel):
    points: int = Field(description="available points that expire on that day")
    expires_at: datetime = Field(description="when the first of them expires")


class WalletOut(BalanceOut):
    wallet_id: uuid.UUID
    pending_points: int = Field(
        default=0, description="earned but pending (end of stay or refund window); not in balance"
    )
    debt_points: int = Field(
        default=0, description="points owed after a refund's clawback; later earns repay it first"
    )
    next_expiry: NextExpiryOut | None = Field(
        default=None, description="the next points to expire, null when none ever do"
    )
    tier_details: TierDetailsOut
    next_tier: NextTierOut | None = Field(description="null at the top tier")
    tier_status: TierStatusOut | None = Field(
        default=None, description="tier basis, progress, next evaluation, pending downgrade"
    )
    created_at: datetime
    updated_at: datetime


# --- transactions ----------------------------------------------------------------------------


class TransactionPage(BaseModel):
    items: list[ValuedTransactionOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class TransactionQuery(BaseModel):
    """Filters and paging of a wallet's history. Datetimes need a timezone offset."""

    model_config = ConfigDict(extra="forbid")

    cursor: str | None = Field(default=None, max_length=64, description="from `next_cursor`")
    limit: int = Field(default=50, ge=1, le=200)
    type: list[TxType] = Field(default_factory=list, max_length=9, description="repeatable")
    since: Instant | None = Field(default=None, description="created at or after")
    until: Instant | None = Field(default=None, description="created before")
    booking_id: ExternalId | None = None


class AdjustmentIn(_Input):
    points: int = Field(
        ge=-MAX_POINTS,
        le=MAX_POINTS,
        description="signed, non-zero: credit or debit",
        json_schema_extra={"not": {"const": 0}},
    )
    reason: Reason
    validity_months: int | None = Field(
        default=None,
        ge=0,
        le=MAX_VALIDITY_MONTHS,
        description="a credit's points expire this many months later (0: never); "
        "default: the service's POINTS_VALIDITY_MONTHS. Not allowed on a debit.",
    )

    @field_validator("points")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("points must not be zero")
        return value

    @model_validator(mode="after")
    def _validity_on_credits(self) -> AdjustmentIn:
        if self.validity_months is not None and self.points < 0:
            raise ValueError("validity_months applies to a credit only: a debit opens no lot")
        return self


# --- customers (backoffice) ------------------------------------------------------------------


class CustomerQuery(BaseModel):
    """Filters of the customer list; ranges are inclusive, datetimes need an offset."""

    model_config = ConfigDict(extra="forbid")

    tier: list[TierCode] = Field(default_factory=list, max_length=20, description="repeatable")
    min_balance: int | None = Field(default=None, ge=0, le=MAX_POINTS)
    max_balance: int | None = Field(default=None, ge=0, le=MAX_POINTS)
    min_lifetime: int | None = Field(default=None, ge=0, le=MAX_POINTS)
    max_lifetime: int | None = Field(default=None, ge=0, le=MAX_POINTS)
    active_since: Instant | None = Field(default=None, description="last activity at or after")
    inactive_since: Instant | None = Field(default=None, description="no activity since")
    cursor: str | None = Field(default=None, max_length=200, description="from `next_cursor`")
    limit: int = Field(default=100, ge=1, le=1000)
    format: Literal["json", "csv"] | None = Field(
        default=None, description="csv: every matching customer as CSV (or Accept: text/csv)"
    )


class CustomerOut(BaseModel):
    user_id: str
    wallet_id: uuid.UUID
    tier: str
    balance: int
    held: int
    available: int
    lifetime_points: int
    last_activity_at: datetime = Field(description="latest ledger posting, else wallet creation")
    created_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerOut] = Field(description="ordered by user id")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")
