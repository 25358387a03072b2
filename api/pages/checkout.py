"""The storefront's points step, as a demo page a storefront can copy: /checkout/{bookingId}
?amount=<order amount in minor units>.

A slider and a number input bounded by the redemption quote, a live order summary (original
price, point deduction, final charge), then the redeem (the same RedemptionWorkflow update as
POST /wallets/{userId}/redeem), the card payment of the remainder with Stripe.js, and the saga's
outcome as it happens. An order the points cover entirely skips the card and is confirmed.

The page's script calls the JSON endpoints below with the session cookie and the CSRF header.
The card is tokenized by Stripe.js in the browser (no card number reaches this service); the
server makes the PaymentMethod from the token and confirms the checkout's PaymentIntent with it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import stripe
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from temporalio.client import Client

from api.pages.render import render
from api.pages.session import Visitor, check_csrf
from api.temporal import LazyTemporalClient, checkout
from loyalty.core import db
from loyalty.core.errors import LoyaltyError, NotFound, ValidationFailed
from loyalty.core.fields import BOOKING_ID_PATTERN
from loyalty.core.settings import Settings
from loyalty.core.stripe_client import async_stripe_client
from loyalty.redemption.contracts import RedeemRequest, RedemptionState
from loyalty.redemption.quote import read_quote
from loyalty.redemption.schemas import RedemptionQuoteBody

router = APIRouter(include_in_schema=False)
BookingId = Annotated[str, Path(alias="bookingId", pattern=BOOKING_ID_PATTERN)]
MAX_AMOUNT = 10**15


def stripe_js_url(settings: Settings) -> str:
    """Stripe.js: the setting; else localstripe's stand-in (it serves one at /js.stripe.com/v3/);
    else Stripe's own."""
    if settings.stripe_js_url:
        return settings.stripe_js_url
    if settings.stripe_api_base and settings.environment != "production":
        return f"{settings.stripe_api_base.rstrip('/')}/js.stripe.com/v3/"
    return "https://js.stripe.com/v3/"


async def _temporal(request: Request) -> Client:
    lazy: LazyTemporalClient = request.app.state.temporal
    return await lazy.get()


async def _quote(request: Request, user_id: str, amount: int, points: int | None) -> Any:
    settings: Settings = request.app.state.settings
    body = RedemptionQuoteBody(order_amount=amount, currency=settings.currency, points=points)
    async with db.autocommit(request.app.state.engine) as conn:
        return await read_quote(
            conn,
            user_id,
            body,
            currency=settings.currency,
            point_value_minor=settings.point_value_minor,
        )


@router.get("/checkout/{bookingId}")
async def checkout_page(
    request: Request,
    principal: Visitor,
    booking_id: BookingId,
    amount: Annotated[int, Query(gt=0, le=MAX_AMOUNT)],
) -> Response:
    settings: Settings = request.app.state.settings
    try:
        quote = await _quote(request, principal.subject, amount, None)
    except LoyaltyError as exc:
        return await render(request, "error.html", 422, title="Checkout", message=exc.message)
    return await render(
        request,
        "checkout.html",
        principal=principal,
        booking_id=booking_id,
        amount=amount,
        quote=quote,
        currency=settings.currency,
        stripe_js=stripe_js_url(settings),
        publishable_key=settings.stripe_publishable_key,
    )


@router.post("/checkout/{bookingId}/quote")
async def quote_json(
    request: Request,
    principal: Visitor,
    booking_id: BookingId,
    amount: Annotated[int, Body(gt=0, le=MAX_AMOUNT, embed=True)],
    points: Annotated[int, Body(ge=0, embed=True)],
) -> Any:
    check_csrf(request, None)
    quote = await _quote(request, principal.subject, amount, points or None)
    data = quote.model_dump(mode="json")
    if not points:  # no points: nothing off the price
        data.update(points=0, discount_minor=0, amount_to_charge_minor=amount)
    return data


@router.post("/checkout/{bookingId}/redeem")
async def redeem_json(
    request: Request,
    principal: Visitor,
    booking_id: BookingId,
    amount: Annotated[int, Body(gt=0, le=MAX_AMOUNT, embed=True)],
    points: Annotated[int, Body(gt=0, embed=True)],
) -> Any:
    check_csrf(request, None)
    settings: Settings = request.app.state.settings
    redeem = RedeemRequest(
        user_id=principal.subject,
        booking_id=booking_id,
        order_amount=amount,
        currency=settings.currency,
        points=points,
    )
    hold = await checkout.redeem(await _temporal(request), settings, redeem)
    return hold.model_dump(mode="json", exclude={"request"})


async def _own_state(request: Request, user_id: str, booking_id: str) -> RedemptionState:
    client = await _temporal(request)
    # Another wallet's checkout is not revealed, as in the API.
    if checkout.owner_of(await checkout.describe(client, booking_id)) != user_id:
        raise NotFound(f"no redemption for booking {booking_id}", booking_id=booking_id)
    return await checkout.state(client, booking_id)


def _said(state: RedemptionState) -> dict[str, Any]:
    """The saga's state and a sentence for the shopper."""
    sentence = {
        "pending": "Holding your points ...",
        "held": "Your points are held. Waiting for the card payment.",
        "capturing": "Payment received: taking your points ...",
        "captured": "Paid. Your points were applied to this order.",
        "releasing": "Cancelling: giving your points back ...",
        "released": "Cancelled: your points were given back.",
        "rejected": f"Refused: {state.error_message or state.error_code}",
    }[state.status]
    if state.status == "held" and state.payment_failures:
        sentence = (
            f"Card declined ({state.last_payment_error or 'declined'}). Your points are still "
            "held: try another card."
        )
    return {**state.model_dump(mode="json", exclude={"hold"}), "sentence": sentence}


@router.get("/checkout/{bookingId}/status")
async def status_json(request: Request, principal: Visitor, booking_id: BookingId) -> Any:
    return _said(await _own_state(request, principal.subject, booking_id))


@router.post("/checkout/{bookingId}/pay")
async def pay_json(
    request: Request,
    principal: Visitor,
    booking_id: BookingId,
    token: Annotated[str, Body(min_length=4, max_length=255, pattern=r"^tok_\w+$", embed=True)],
) -> Any:
    check_csrf(request, None)
    state = await _own_state(request, principal.subject, booking_id)
    if state.status != "held" or state.hold is None or state.hold.payment_intent_id is None:
        raise ValidationFailed(f"this checkout is {state.status}: nothing to pay")
    try:
        async with async_stripe_client(request.app.state.settings) as client:
            method = await client.v1.payment_methods.create_async(
                {"type": "card", "card": {"token": token}}
            )
            intent = await client.v1.payment_intents.confirm_async(
                state.hold.payment_intent_id, {"payment_method": method.id}
            )
    except stripe.CardError as exc:
        return JSONResponse({"declined": exc.user_message or "card declined"}, status_code=402)
    return {"payment_status": intent.status}


@router.post("/checkout/{bookingId}/{decision}")
async def decide_json(
    request: Request,
    principal: Visitor,
    booking_id: BookingId,
    decision: Annotated[str, Path(pattern="^(confirm|release)$")],
) -> Any:
    """confirm: the points covered the whole order; release: the shopper cancels."""
    check_csrf(request, None)
    state = await _own_state(request, principal.subject, booking_id)
    if decision == "confirm" and state.hold is not None and state.hold.amount_to_charge_minor:
        raise ValidationFailed("this order has a remainder to pay by card")
    client = await _temporal(request)
    verdict: Literal["confirm", "release"] = "confirm" if decision == "confirm" else "release"
    return _said(await checkout.decide(client, booking_id, verdict, "storefront checkout page"))
