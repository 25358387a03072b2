"""Customers for the backoffice: wallets by tier, balance, lifetime points and last activity,
as cursor-paginated JSON or as CSV (`Accept: text/csv` or `?format=csv`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import Admin, get_engine
from api.errors import error_responses
from loyalty.wallets import customers
from loyalty.wallets.schemas import CustomerPage, CustomerQuery

router = APIRouter(prefix="/customers", tags=["customers"])


def _wants_csv(query: CustomerQuery, accept: str | None) -> bool:
    if query.format is not None:
        return query.format == "csv"
    return accept is not None and "text/csv" in accept


@router.get(
    "",
    response_model=CustomerPage,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **error_responses(400),
    },
)
async def list_customers(
    principal: Admin,
    engine: Annotated[AsyncEngine, Depends(get_engine)],
    query: Annotated[CustomerQuery, Query()],
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Customers (wallets) filtered by tier, balance, lifetime points and last activity."""
    # The engine, not the request's transaction: the CSV streams after the endpoint returns,
    # reading each page in a short transaction of its own.
    if _wants_csv(query, accept):
        return StreamingResponse(
            customers.customer_csv(engine, query),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
        )
    async with engine.connect() as conn:
        return await customers.customer_page(conn, query)
