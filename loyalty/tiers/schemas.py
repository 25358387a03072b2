"""Request and response models of the tier endpoints. Inputs are strict and closed
like every other input of the API (loyalty.wallets.schemas); points are integers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

from loyalty.core.fields import MAX_POINTS, NOT_BLANK, Omittable
from loyalty.core.text import NO_NUL
from loyalty.tiers.rules import Basis

TierCode = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
TierName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True, pattern=NOT_BLANK)
]

# A tier's benefits are free-form JSON, stored as jsonb, which holds no NUL (in a key or a
# string): the types refuse it, and the schema says so. Numbers are integers, as everywhere in
# this API (a float, 1e400 included, is a 422).
_JsonText = Annotated[str, StringConstraints(pattern=NO_NUL)]


class _OnlyMatchingKeys:
    """An object's keys must match its `patternProperties` (pydantic's schema of a dict with
    constrained keys would let other keys through)."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["additionalProperties"] = False
        return schema


if TYPE_CHECKING:  # mypy does not follow a recursive TypeAliasType
    JsonValue = Any
else:
    JsonValue = TypeAliasType(
        "JsonValue",
        _JsonText
        | int
        | bool
        | list["JsonValue"]
        | Annotated[dict[_JsonText, "JsonValue"], _OnlyMatchingKeys]
        | None,
    )
Benefits = Annotated[dict[_JsonText, JsonValue], _OnlyMatchingKeys]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TierOut(BaseModel):
    code: str
    name: str
    rank: int = Field(description="position in the ladder, lowest first")
    threshold: int = Field(description="points needed on the basis to reach the tier")
    basis: Basis = Field(description="lifetime points kept, or those of the trailing 12 months")
    earn_multiplier_pct: int = Field(description="earn multiplier in percent (150 = 1.5x)")
    redemption_cap_pct: int | None = Field(description="max share of an order paid in points")
    redemption_cap_points: int | None = Field(description="max points per booking")
    benefits: dict[str, Any]


class TierIn(_Input):
    code: TierCode
    name: TierName
    rank: int = Field(ge=1, le=1000)
    threshold: int = Field(ge=0, le=MAX_POINTS)
    basis: Basis = "lifetime"
    earn_multiplier_pct: int = Field(default=100, ge=1, le=10_000)
    redemption_cap_pct: int | None = Field(default=None, ge=0, le=100)
    redemption_cap_points: int | None = Field(default=None, ge=0, le=MAX_POINTS)
    benefits: Benefits = Field(default_factory=dict, max_length=50)


class TierPatch(_Input):
    """Fields to change; the code names the tier and cannot change."""

    name: Omittable[TierName]
    rank: Omittable[int] = Field(default=None, ge=1, le=1000)
    threshold: Omittable[int] = Field(default=None, ge=0, le=MAX_POINTS)
    basis: Omittable[Basis]
    earn_multiplier_pct: Omittable[int] = Field(default=None, ge=1, le=10_000)
    redemption_cap_pct: int | None = Field(default=None, ge=0, le=100, description="null: no cap")
    redemption_cap_points: int | None = Field(
        default=None, ge=0, le=MAX_POINTS, description="null: no cap"
    )
    benefits: Omittable[Benefits] = Field(default=None, max_length=50)


class TierOrderIn(_Input):
    codes: list[TierCode] = Field(min_length=1, max_length=100, description="lowest tier first")


class TierLadderOut(BaseModel):
    tiers: list[TierOut] = Field(description="lowest rank first")
    next_evaluation_at: datetime = Field(description="next scheduled tier evaluation")


class PendingDowngradeOut(BaseModel):
    to_tier: str = Field(description="the tier the wallet's points earn now")
    since: datetime = Field(description="first evaluation that found the wallet short")
    effective_at: datetime = Field(
        description="from the first evaluation at or after this instant, unless it re-qualifies"
    )


class TierStatusOut(BaseModel):
    """Where a wallet stands in the ladder, as the tier evaluation sees it."""

    tier: str
    basis: Basis = Field(description="what the current tier counts")
    lifetime_points: int = Field(
        description="points kept: earned, less what refunds took back (owed points included)"
    )
    trailing_12m_points: int = Field(description="the same count over the last 12 months")
    next_tier: str | None = Field(description="null at the top")
    next_tier_basis: Basis | None
    points_to_next_tier: int = Field(description="0 at the top or once reached")
    next_evaluation_at: datetime = Field(description="when the tier is next re-evaluated")
    pending_downgrade: PendingDowngradeOut | None
