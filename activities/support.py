"""What every activity shares: a business refusal ends its retries at once, and database work
runs in one transaction owned by the activity (committed when it returns), or, for work whose
one write is one ledger posting, in autocommit (the posting is atomic on its own)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.core.refusals import as_application_error


@contextlib.asynccontextmanager
async def refusals_final() -> AsyncIterator[None]:
    """A LoyaltyError raised inside becomes a non-retryable ApplicationError (type = its code):
    a refusal never changes on a retry. Anything else stays retryable."""
    try:
        yield
    except LoyaltyError as err:
        raise as_application_error(err) from err


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One database transaction (rolled back on any exception), refusals made final."""
    async with refusals_final(), db.transaction(engine) as conn:
        yield conn


@contextlib.asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose every statement commits on its own, refusals made final."""
    async with refusals_final(), db.autocommit(engine) as conn:
        yield conn
