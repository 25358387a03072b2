"""Booking events from the booking platform (service scope): confirmed, payment succeeded,
refunded, cancelled. Each is handed to the booking's accrual or refund workflow and answered
once that workflow has it (202); a redelivered event (same event id: 200 `duplicate`, or same
payment / refund) does nothing new."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import AppSettings, Connection, Service, TemporalClient
from api.errors import error_responses
from api.temporal import booking_events as booking_intake
from loyalty.earning.events import BookingEventAck, BookingEventIn

router = APIRouter(tags=["booking events"])


@router.post(
    "/booking-events",
    response_model=BookingEventAck,
    status_code=202,
    responses={
        200: {"model": BookingEventAck, "description": "duplicate event id"},
        **error_responses(409, 503),
    },
)
async def booking_event(
    body: BookingEventIn,
    principal: Service,
    conn: Connection,
    settings: AppSettings,
    client: TemporalClient,
    response: Response,
) -> BookingEventAck:
    """Report a booking event: 202 once its workflow has it, 200 for a known event id."""
    ack = await booking_intake.receive(conn, client, settings, body.event)
    if ack.duplicate:
        response.status_code = 200
    return ack
