"""The rules of applying points to an order: what a request may ask, the tier's redemption cap,
the discount and the remainder left to pay, and when two requests are the same.

Pure (no I/O): the workflow imports this module through `imports_passed_through`, the hold
store (loyalty.redemption.holds) and the API's client (api.temporal.checkout) directly."""

from __future__ import annotations

import hashlib
import json

from loyalty.core.errors import ValidationFailed
from loyalty.redemption.contracts import RedeemRequest
from loyalty.redemption.errors import CurrencyNotSupported, RedemptionCapExceeded

# The outcomes that spend the held points; every other outcome gives them back.
CAPTURING_DECISIONS: frozenset[str] = frozenset({"payment_succeeded", "confirmed"})
# How a finished checkout ended decides whether the booking may check out again: only a capture
# closes it for good (released, expired, payment cancelled and refused runs do not).
FINAL_STATUS_CAPTURED = "captured"
# A reason travels into the ledger's description: bounded, and without the one character
# PostgreSQL text cannot hold (the API refuses both; signals may come from elsewhere).
MAX_REASON_LENGTH = 500


def validate_request(request: RedeemRequest, *, currency: str) -> None:
    """Checks that need no database: raise a LoyaltyError when the request can never succeed."""
    if request.currency.upper() != currency.upper():
        raise CurrencyNotSupported(
            f"this service redeems in {currency}, not {request.currency}",
            currency=request.currency,
            supported=currency,
        )
    if request.order_amount <= 0:
        raise ValidationFailed("order amount must be positive", order_amount=request.order_amount)
    if request.points <= 0:
        raise ValidationFailed("points must be positive", points=request.points)


def max_redeemable_points(
    order_amount: int, *, cap_pct: int | None, cap_points: int | None, point_value_minor: int
) -> int:
    """The most points one booking may use: the tier's percent-of-order and absolute caps, and
    never more than the order is worth. Rounds down (a discount never exceeds the cap)."""
    limit = order_amount // point_value_minor
    if cap_pct is not None:
        limit = min(limit, order_amount * cap_pct // 100 // point_value_minor)
    if cap_points is not None:
        limit = min(limit, cap_points)
    return max(limit, 0)


def discount_for(points: int, *, point_value_minor: int) -> int:
    return points * point_value_minor


def plan_hold(
    request: RedeemRequest,
    *,
    tier: str,
    cap_pct: int | None,
    cap_points: int | None,
    point_value_minor: int,
) -> tuple[int, int]:
    """(discount, amount left to charge) for the request, or RedemptionCapExceeded."""
    limit = max_redeemable_points(
        request.order_amount,
        cap_pct=cap_pct,
        cap_points=cap_points,
        point_value_minor=point_value_minor,
    )
    if request.points > limit:
        raise RedemptionCapExceeded(
            f"tier {tier} may redeem at most {limit} points on this booking",
            tier=tier,
            max_points=limit,
            requested=request.points,
        )
    discount = discount_for(request.points, point_value_minor=point_value_minor)
    return discount, request.order_amount - discount


def same_request(a: RedeemRequest, b: RedeemRequest) -> bool:
    """Whether a repeated redeem asks for the same thing (currency compared case-blind)."""
    return a.model_copy(update={"currency": a.currency.upper()}) == b.model_copy(
        update={"currency": b.currency.upper()}
    )


def update_id_for(request: RedeemRequest, run: str | None = None) -> str:
    """The redeem update's id: the booking plus a fingerprint of the request, so an identical
    retry attaches to the first update's stored outcome while a corrected request after a
    refusal gets a fresh one (Temporal answers a reused update id from the closed run). `run`
    names the run the update is meant for (the running one, or the one a new run follows), so
    a checkout started again never meets the answer of the run before it."""
    canonical = json.dumps(
        request.model_copy(update={"currency": request.currency.upper()}).model_dump(),
        sort_keys=True,
        separators=(",", ":"),
    )
    update_id = f"{request.booking_id}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
    return f"{update_id}:{run}" if run else update_id


def plain_reason(reason: str) -> str:
    """A decision's reason as the ledger can store it: NUL and unpaired surrogates (neither is
    valid in PostgreSQL's UTF-8 text) removed, at most MAX_REASON_LENGTH characters."""
    cleaned = reason.encode("utf-8", "ignore").decode("utf-8").replace("\x00", "")
    return cleaned[:MAX_REASON_LENGTH] or "no reason given"


def failed_attempts(count: int) -> str:
    """`1 failed attempt`, `2 failed attempts`: how the status tells of declined payments."""
    return f"{count} failed attempt" + ("" if count == 1 else "s")
