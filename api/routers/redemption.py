"""Checkout redemption: redeem (starts the saga and returns the hold), confirm, release, status.

Each endpoint is a thin call into api.temporal.checkout, which talks to the RedemptionWorkflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from api.auth import SCOPE_CUSTOMER, SCOPE_SERVICE, Principal, check_wallet_access, require_scope
from api.deps import AppSettings, LonePosting, Service, TemporalClient, UserId, WalletReader
from api.errors import error_responses
from api.temporal import checkout
from loyalty.core.errors import NotFound
from loyalty.core.fields import BOOKING_ID_PATTERN
from loyalty.redemption.contracts import RedeemRequest, RedemptionHold, RedemptionState
from loyalty.redemption.quote import read_quote
from loyalty.redemption.schemas import (
    DecisionBody,
    RedeemBody,
    RedemptionQuote,
    RedemptionQuoteBody,
)

router = APIRouter(prefix="/wallets", tags=["redemption"])

BookingId = Annotated[str, Path(alias="bookingId", pattern=BOOKING_ID_PATTERN)]


async def _check_owner(client: TemporalClient, user_id: str, booking_id: str) -> None:
    """404 for a booking of another wallet: other wallets' checkouts are not revealed. Read from
    the saga's search attributes, so it works while no worker runs."""
    if checkout.owner_of(await checkout.describe(client, booking_id)) != user_id:
        raise NotFound(f"no redemption for booking {booking_id}", booking_id=booking_id)


@router.post(
    "/{userId}/redeem",
    response_model=RedemptionHold,
    responses=error_responses(404, 409, 422, 503),
)
async def redeem(
    user_id: UserId,
    body: RedeemBody,
    principal: Service,
    settings: AppSettings,
    client: TemporalClient,
) -> RedemptionHold:
    """Apply points to a checkout: hold them and create the PaymentIntent for the remainder.
    Repeating the call while the checkout runs returns the same answer; another body is a 409.
    After a checkout that ended without a capture (released, expired, payment cancelled), the
    call starts the booking's next checkout with a new hold; after a capture it is a 409."""
    request = RedeemRequest(user_id=user_id, **body.model_dump())
    return await checkout.redeem(client, settings, request)


@router.post(
    "/{userId}/confirm",
    response_model=RedemptionState,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(404, 422),
)
async def confirm(
    user_id: UserId, body: DecisionBody, principal: Service, client: TemporalClient
) -> RedemptionState:
    """Confirm the checkout (paid outside Stripe, or nothing left to charge): points captured."""
    await _check_owner(client, user_id, body.booking_id)
    return await checkout.decide(client, body.booking_id, "confirm", body.reason)


@router.post(
    "/{userId}/release",
    response_model=RedemptionState,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(404, 422),
)
async def release(
    user_id: UserId, body: DecisionBody, principal: Service, client: TemporalClient
) -> RedemptionState:
    """Cancel the checkout: the PaymentIntent is cancelled and the points released (captured
    instead if the customer had already paid)."""
    await _check_owner(client, user_id, body.booking_id)
    return await checkout.decide(client, body.booking_id, "release", body.reason)


@router.get(
    "/{userId}/redemptions/{bookingId}",
    response_model=RedemptionState,
    responses=error_responses(404),
)
async def redemption_status(
    user_id: UserId, booking_id: BookingId, principal: WalletReader, client: TemporalClient
) -> RedemptionState:
    """Where the checkout's saga is: held, capturing, captured, releasing, released, rejected."""
    await _check_owner(client, user_id, booking_id)
    return await checkout.state(client, booking_id)


_customer_or_service = require_scope(SCOPE_CUSTOMER, SCOPE_SERVICE)


async def _shopper(
    principal: Annotated[Principal, Depends(_customer_or_service)], user_id: UserId
) -> Principal:
    """The wallet's owner (the storefront) or the booking service."""
    check_wallet_access(principal, user_id)
    return principal


@router.post(
    "/{userId}/redemption-quote", response_model=RedemptionQuote, responses=error_responses(404)
)
async def redemption_quote(
    user_id: UserId,
    body: RedemptionQuoteBody,
    principal: Annotated[Principal, Depends(_shopper)],
    conn: LonePosting,  # one read: atomic on its own, no BEGIN and COMMIT
    settings: AppSettings,
) -> RedemptionQuote:
    """How many points may be applied to an order, what bounds them, and the discount and
    remainder for a number of points (the most when none is given). Holds nothing."""
    return await read_quote(
        conn,
        user_id,
        body,
        currency=settings.currency,
        point_value_minor=settings.point_value_minor,
    )
