"""Request and response models of earning's endpoints: the internal earn on a paid booking and
the campaign admin. Inputs are strict and closed; points and money are integers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from loyalty.core.fields import (
    MAX_AMOUNT_MINOR,
    CurrencyCode,
    ExternalId,
    Instant,
    Name,
    Omittable,
    PointValue,
    PointValueOut,
    Tag,
)
from loyalty.ledger.schemas import BalanceOut, TransactionOut

CampaignId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
]
MAX_BONUS_POINTS = 10**9


class _StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- earn ------------------------------------------------------------------------------------


class EarnIn(_StrictInput):
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


# --- campaigns -------------------------------------------------------------------------------


def check_shape(kind: str, multiplier_pct: int | None, bonus_points: int | None) -> None:
    """A multiplier campaign has a multiplier and no bonus; a bonus campaign the reverse."""
    if kind == "multiplier" and (multiplier_pct is None or bonus_points is not None):
        raise ValueError("a multiplier campaign needs multiplier_pct and no bonus_points")
    if kind == "bonus" and (bonus_points is None or multiplier_pct is not None):
        raise ValueError("a bonus campaign needs bonus_points and no multiplier_pct")


class _Input(BaseModel):
    # Integers stay integers (no "5" or 5.0 or true); datetimes come as ISO strings with a zone.
    model_config = ConfigDict(extra="forbid")


class CampaignIn(_Input):
    campaign_id: CampaignId = Field(description="stable id chosen by the admin, e.g. tet-2027")
    name: Name
    kind: Literal["multiplier", "bonus"]
    multiplier_pct: StrictInt | None = Field(
        default=None, gt=100, le=10_000, description="multiplier: 200 doubles the base points"
    )
    bonus_points: StrictInt | None = Field(
        default=None, gt=0, le=MAX_BONUS_POINTS, description="bonus"
    )
    product_types: list[Tag] = Field(default_factory=list, max_length=50)
    categories: list[Tag] = Field(default_factory=list, max_length=50)
    cap_points_per_booking: StrictInt | None = Field(default=None, ge=0, le=MAX_BONUS_POINTS)
    starts_at: Instant
    ends_at: Instant
    points_validity_months: StrictInt | None = Field(
        default=None,
        ge=0,
        le=1200,
        description="points of an earn this campaign adds to expire this many months after "
        "the earn (0: never; null: the default, POINTS_VALIDITY_MONTHS)",
    )
    point_value_minor: PointValue | None = Field(
        default=None,
        description="the campaign's own value of a point: earns issued under it are valued at "
        "this rate instead of the rate in force (null: the rate in force)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CampaignIn:
        check_shape(self.kind, self.multiplier_pct, self.bonus_points)
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class CampaignPatch(_Input):
    """Fields to change; the kind cannot change (end the campaign and create another)."""

    name: Omittable[Name]
    multiplier_pct: Omittable[StrictInt] = Field(default=None, gt=100, le=10_000)
    bonus_points: Omittable[StrictInt] = Field(default=None, gt=0, le=MAX_BONUS_POINTS)
    product_types: Omittable[list[Tag]] = Field(default=None, max_length=50)
    categories: Omittable[list[Tag]] = Field(default=None, max_length=50)
    cap_points_per_booking: StrictInt | None = Field(
        default=None, ge=0, le=MAX_BONUS_POINTS, description="null: no cap"
    )
    starts_at: Omittable[Instant]
    ends_at: Omittable[Instant]
    points_validity_months: StrictInt | None = Field(
        default=None, ge=0, le=1200, description="null: the default validity"
    )
    point_value_minor: PointValue | None = Field(
        default=None, description="null: no own rate (earns are valued at the rate in force)"
    )


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    kind: Literal["multiplier", "bonus"]
    multiplier_pct: int | None
    bonus_points: int | None
    product_types: list[str]
    categories: list[str]
    cap_points_per_booking: int | None
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = Field(description="set when an admin ended the campaign")
    status: Literal["scheduled", "running", "finished"]
    points_validity_months: int | None = Field(
        default=None, description="months the points it adds last; null: the default"
    )
    point_value_minor: PointValueOut | None = Field(
        description="the campaign's own value of a point; null: earns take the rate in force"
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime
