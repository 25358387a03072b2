"""Point rates (admin): what one point is worth, from when. Every ledger row is valued at the
rate in force when it is posted (or its campaign's own rate); a rate is never rewritten, so a
change is a new rate that starts later."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Admin, AppSettings, Connection
from api.errors import error_responses
from loyalty.ledger import rates
from loyalty.ledger.schemas import RateIn, RateOut

router = APIRouter(prefix="/rates", tags=["rates"])


@router.get("", response_model=list[RateOut], responses=error_responses())
async def list_rates(principal: Admin, conn: Connection) -> list[RateOut]:
    """Every point rate, oldest first, with the one in force now marked."""
    return await rates.list_rates(conn)


@router.post(
    "",
    response_model=RateOut,
    status_code=201,
    responses={200: {"model": RateOut, "description": "replay"}, **error_responses(409)},
)
async def add_rate(
    body: RateIn, principal: Admin, conn: Connection, settings: AppSettings, response: Response
) -> RateOut:
    """Add a point rate from a start not in the past; the same body again replays it."""
    rate, created = await rates.add_rate(
        conn, body, actor=principal.subject, currency=settings.currency
    )
    if not created:
        response.status_code = 200
    return rate
