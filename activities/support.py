"""What every activity shares: an answer that can never change ends its retries at once, and
database work runs in one transaction owned by the activity (committed when it returns), or, for
work whose one write is one ledger posting, in autocommit (the posting is atomic on its own).

Two kinds of answers are final:
- a business refusal (a LoyaltyError): an expected outcome. One line at info names it; Temporal
  gets it as a BENIGN failure (loyalty.core.refusals), which the SDK logs at debug level without
  a traceback.
- a PostgreSQL data error (SQLSTATE class 22: text it cannot store, a number out of range ...),
  or input the driver cannot even encode: the same statement fails the same way every time. It
  is logged at error level (something upstream let bad input through) and raised as a
  non-retryable `database_data_error`, so the workflow decides instead of retrying forever.
Anything else (a connection lost, a deadlock, a timeout) stays retryable."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from asyncpg.exceptions import InterfaceError as DriverInterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.core.refusals import as_application_error

log = activity.LoggerAdapter(logging.getLogger("loyalty.activities"), None)

DATA_EXCEPTION_CLASS = "22"  # SQLSTATE class "data exception"
DATA_ERROR = "database_data_error"  # the ApplicationError type of a final data error


def data_error_in(err: BaseException) -> BaseException | None:
    """The data error behind `err` (SQLAlchemy's wrapper, the driver's own exception, or the
    driver's refusal to encode a parameter), or None when `err` is something else."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(DATA_EXCEPTION_CLASS):
            return current
        # asyncpg's client-side DataError (an InterfaceError and a ValueError): a parameter it
        # cannot encode, such as an integer beyond 64 bits or text with an unpaired surrogate.
        if isinstance(current, DriverInterfaceError) and isinstance(current, ValueError):
            return current
        if isinstance(current, UnicodeError):
            return current
        current = getattr(current, "orig", None) or current.__cause__
    return None


@contextlib.asynccontextmanager
async def refusals_final() -> AsyncIterator[None]:
    """A LoyaltyError raised inside becomes a non-retryable, benign ApplicationError (type = its
    code), and a data error a non-retryable `database_data_error`: neither changes on a retry.
    Anything else stays retryable."""
    try:
        yield
    except LoyaltyError as err:
        log.info("refused: %s: %s", err.code, err.message)
        raise as_application_error(err) from err
    except Exception as err:
        data_error = data_error_in(err)
        if data_error is None:
            raise
        log.error("the database cannot store this input, not retrying: %s", data_error)
        raise ApplicationError(
            f"the database cannot store this input: {data_error}",
            type=DATA_ERROR,
            non_retryable=True,
        ) from err


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One database transaction (rolled back on any exception), final answers made final."""
    async with refusals_final(), db.transaction(engine) as conn:
        yield conn


@contextlib.asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose every statement commits on its own, final answers made final."""
    async with refusals_final(), db.autocommit(engine) as conn:
        yield conn
