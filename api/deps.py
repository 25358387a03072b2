"""Shared request dependencies: settings, the per-request transaction, Temporal, auth, and the
parameters several routers take (user id, Idempotency-Key).

The transaction lives at the edge: one connection per request inside
`loyalty.core.db.transaction`, committed when the endpoint returns and rolled back when it raises.
`scope="function"` makes the commit happen before the response is sent, so a 2xx always means
committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client

from api.auth import (
    SCOPE_ADMIN,
    SCOPE_CUSTOMER,
    SCOPE_SERVICE,
    Principal,
    check_wallet_access,
    require_scope,
)
from api.temporal import LazyTemporalClient
from loyalty.core import db
from loyalty.core.settings import Settings


# Dependencies are `async def` even without I/O: FastAPI runs a plain `def` dependency in its
# thread pool, a thread hop per request for reading an attribute.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def transaction(request: Request) -> AsyncIterator[AsyncConnection]:
    async with db.transaction(await get_engine(request)) as conn:
        yield conn


async def autocommit(request: Request) -> AsyncIterator[AsyncConnection]:
    async with db.autocommit(await get_engine(request)) as conn:
        yield conn


async def temporal_client(request: Request) -> Client:
    lazy: LazyTemporalClient = request.app.state.temporal
    return await lazy.get()


AppSettings = Annotated[Settings, Depends(get_settings)]
Connection = Annotated[AsyncConnection, Depends(transaction, scope="function")]
# For an endpoint whose one write is one ledger posting: atomic on its own, no BEGIN and COMMIT.
LonePosting = Annotated[AsyncConnection, Depends(autocommit, scope="function")]
TemporalClient = Annotated[Client, Depends(temporal_client)]

# The user id in `/wallets/{userId}`: bounded like every other id.
UserId = Annotated[str, Path(alias="userId", min_length=1, max_length=128, pattern=r"^[!-~]+$")]

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="client-chosen key; a retry with the same key and body replays the answer",
    ),
]
# Set on a 200 that replays an earlier answer to the same Idempotency-Key.
REPLAY_HEADER = "Idempotent-Replayed"

Service = Annotated[Principal, Depends(require_scope(SCOPE_SERVICE))]
Admin = Annotated[Principal, Depends(require_scope(SCOPE_ADMIN))]
AdminOrService = Annotated[Principal, Depends(require_scope(SCOPE_ADMIN, SCOPE_SERVICE))]

_any_reader = require_scope(SCOPE_CUSTOMER, SCOPE_SERVICE, SCOPE_ADMIN)
AnyCaller = Annotated[Principal, Depends(_any_reader)]


async def wallet_reader(principal: AnyCaller, user_id: UserId) -> Principal:
    """A caller allowed to read this wallet: its owner, the booking service or an admin."""
    check_wallet_access(principal, user_id)
    return principal


WalletReader = Annotated[Principal, Depends(wallet_reader)]
