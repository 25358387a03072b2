"""The voucher rules, apart from the store: who may buy (sale window, active flag, minimum tier),
what an issued voucher looks like (its code, its expiry, the status it shows), the keys of the
points a purchase burns and refunds, and the refusals a purchase can meet.

Pure (the standard library and the error family): the workflow may import it, the store and the
activities apply it, and the tests check it without a database."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from loyalty.core.errors import LoyaltyError

VoucherStatus = Literal["active", "used", "expired"]

# The ledger's counter account of every voucher burn.
VOUCHER_SALES_ACCOUNT = "voucher_sales"

# Unambiguous alphabet (no 0/O, 1/I): 32 symbols, 16 of them = 80 bits from `secrets`.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16


class VoucherSoldOut(LoyaltyError):
    code = "voucher_sold_out"
    status_code = 409


class VoucherNotAvailable(LoyaltyError):
    """The product is inactive, or outside its sale window."""

    code = "voucher_not_available"
    status_code = 422


class TierTooLow(LoyaltyError):
    code = "tier_too_low"
    status_code = 422


class VoucherLimitReached(LoyaltyError):
    """The customer already bought as many of this product as it allows."""

    code = "voucher_limit_reached"
    status_code = 409


class VoucherNotUsable(LoyaltyError):
    """The voucher is already used or expired."""

    code = "voucher_not_usable"
    status_code = 409


class VoucherPurchaseFailed(LoyaltyError):
    """The purchase could not be completed and was undone (points and inventory given back);
    the same request may be retried with the same idempotency key."""

    code = "voucher_purchase_failed"
    status_code = 503


class VoucherPurchasePending(LoyaltyError):
    """The purchase is still running; retrying with the same idempotency key attaches to it."""

    code = "voucher_purchase_pending"
    status_code = 503


def generate_code() -> str:
    """An unguessable voucher code such as `K7QM-2XWP-9HDA-Z4TC`."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def check_on_sale(product: Mapping[Any, Any], now: datetime) -> None:
    if not product["active"]:
        raise VoucherNotAvailable("this voucher is no longer sold", reason="inactive")
    if product["sale_starts_at"] is not None and now < product["sale_starts_at"]:
        raise VoucherNotAvailable(
            "this voucher is not on sale yet",
            reason="not_started",
            sale_starts_at=product["sale_starts_at"].isoformat(),
        )
    if product["sale_ends_at"] is not None and now >= product["sale_ends_at"]:
        raise VoucherNotAvailable(
            "this voucher is no longer on sale",
            reason="ended",
            sale_ends_at=product["sale_ends_at"].isoformat(),
        )


def check_tier(min_tier: str | None, min_rank: int | None, tier: str, rank: int) -> None:
    if min_tier is not None and min_rank is not None and rank < min_rank:
        raise TierTooLow(
            f"this voucher needs tier {min_tier} or higher; the wallet is {tier}",
            min_tier=min_tier,
            tier=tier,
        )


def voucher_expiry(
    issued_at: datetime, valid_days: int | None, valid_until: datetime | None
) -> datetime | None:
    """The earlier of `valid_days` after issue and `valid_until`; None if neither is set."""
    candidates = [valid_until] if valid_until is not None else []
    if valid_days is not None:
        candidates.append(issued_at + timedelta(days=valid_days))
    return min(candidates) if candidates else None


def shown_status(status: str, expires_at: datetime | None, now: datetime) -> VoucherStatus:
    """An active voucher past its expiry shows as expired (no sweeper has to run for that)."""
    if status == "active" and expires_at is not None and expires_at <= now:
        return "expired"
    return "used" if status == "used" else "expired" if status == "expired" else "active"


# Each attempt of a purchase (a new one after it was undone) burns and refunds under keys of
# its own, so a retried activity posts once and a retried purchase is not mistaken for a replay.
def burn_key(purchase_id: object, attempt: int) -> str:
    return f"voucher-purchase:{purchase_id}:{attempt}:burn"


def refund_key(purchase_id: object, attempt: int) -> str:
    return f"voucher-purchase:{purchase_id}:{attempt}:refund"
