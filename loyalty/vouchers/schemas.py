"""The voucher API's bodies: the catalog's products and code uploads (admin), a purchase, the
list of a customer's vouchers and the use of one. Every input is strict and bounded. (The issued
voucher, VoucherOut, is a workflow result as well: loyalty.vouchers.contracts.)"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from loyalty.core.fields import MAX_POINTS, Instant, Omittable
from loyalty.core.text import NO_NUL
from loyalty.tiers.schemas import TierCode
from loyalty.vouchers.contracts import VoucherOut

MAX_CODES_PER_UPLOAD = 10_000

CodeSource = Literal["generated", "uploaded"]

# Codes customers type: printable ASCII without spaces, bounded.
VoucherCode = Annotated[str, StringConstraints(min_length=4, max_length=64, pattern=r"^[!-~]+$")]


class _Input(BaseModel):
    # Integers and booleans are strict (no floats, numeric strings or 0/1); datetimes are parsed.
    model_config = ConfigDict(extra="forbid")


# --- catalog -----------------------------------------------------------------------------------


class _ProductFields(_Input):
    @model_validator(mode="after")
    def _windows(self) -> _ProductFields:
        starts = getattr(self, "sale_starts_at", None)
        ends = getattr(self, "sale_ends_at", None)
        if starts is not None and ends is not None and starts >= ends:
            raise ValueError("sale_starts_at must be before sale_ends_at")
        return self


class ProductIn(_ProductFields):
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    description: str = Field(default="", max_length=4000, pattern=NO_NUL)
    price_points: StrictInt = Field(gt=0, le=MAX_POINTS, description="price in points")
    code_source: CodeSource = Field(
        default="generated",
        description="`generated`: an unguessable code is made at purchase; `uploaded`: codes "
        "come from batches uploaded to the product, and inventory is the number of codes",
    )
    inventory: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_POINTS,
        description="items for sale; null = unlimited (generated codes only; uploaded-code "
        "products start at 0 and grow with each upload)",
    )
    sale_starts_at: Instant | None = None
    sale_ends_at: Instant | None = None
    voucher_valid_days: StrictInt | None = Field(
        default=None, gt=0, le=3650, description="an issued voucher expires this many days later"
    )
    voucher_valid_until: Instant | None = Field(
        default=None, description="issued vouchers expire at this time at the latest"
    )
    min_tier: TierCode | None = Field(default=None, description="lowest tier that may buy it")
    per_customer_limit: StrictInt | None = Field(
        default=None, gt=0, le=1_000_000, description="purchases per customer; null = no limit"
    )
    active: StrictBool = True

    @model_validator(mode="after")
    def _uploaded_inventory(self) -> ProductIn:
        if self.code_source == "uploaded" and self.inventory is not None:
            raise ValueError("uploaded-code products take their inventory from uploaded codes")
        return self


class ProductPatch(_ProductFields):
    """Only the fields given change; `null` clears an optional field."""

    # A field a product must have may be left out, not set to null (the schema says so too).
    name: Omittable[str] = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    description: Omittable[str] = Field(default=None, max_length=4000, pattern=NO_NUL)
    price_points: Omittable[StrictInt] = Field(default=None, gt=0, le=MAX_POINTS)
    inventory: StrictInt | None = Field(default=None, ge=0, le=MAX_POINTS)
    sale_starts_at: Instant | None = None
    sale_ends_at: Instant | None = None
    voucher_valid_days: StrictInt | None = Field(default=None, gt=0, le=3650)
    voucher_valid_until: Instant | None = None
    min_tier: TierCode | None = None
    per_customer_limit: StrictInt | None = Field(default=None, gt=0, le=1_000_000)
    active: Omittable[StrictBool]


class ProductOut(BaseModel):
    product_id: uuid.UUID
    name: str
    description: str
    price_points: int
    code_source: CodeSource
    inventory: int | None = Field(description="items for sale in all; null = unlimited")
    inventory_taken: int = Field(description="items sold or reserved by purchases in flight")
    inventory_left: int | None = Field(description="null = unlimited")
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    voucher_valid_days: int | None
    voucher_valid_until: datetime | None
    min_tier: str | None
    per_customer_limit: int | None
    active: bool
    created_at: datetime
    updated_at: datetime


class CodesIn(_Input):
    codes: list[VoucherCode] = Field(min_length=1, max_length=MAX_CODES_PER_UPLOAD)


class CodesUploaded(BaseModel):
    added: int = Field(description="new codes put in the pool (and added to the inventory)")
    duplicates: list[str] = Field(description="codes that were already known, skipped")
    product: ProductOut


# --- purchase ------------------------------------------------------------------------------------


class PurchaseIn(_Input):
    product_id: uuid.UUID


class VoucherList(BaseModel):
    items: list[VoucherOut] = Field(description="newest first")


class UseVoucherIn(_Input):
    reference: str | None = Field(
        default=None,
        max_length=128,
        pattern=NO_NUL,
        description="e.g. the booking the voucher was used on",
    )
