"""The API against real PostgreSQL: one app per session (its lifespan run around the session),
an httpx client over ASGITransport, and a factory of dev tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings

Headers = dict[str, str]


@asynccontextmanager
async def serve(app: FastAPI, **transport: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client talking to `app` in process, with the app's lifespan running around it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, **transport), base_url="http://loyalty.test"
        ) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def api_settings(database_url: str) -> Settings:
    return Settings(environment="test", database_url=database_url)


@pytest.fixture(scope="session")
async def api_client(
    api_settings: Settings, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    # `engine` is set up here, before any test: the root conftest's invariant check fetches it
    # with getfixturevalue, which cannot start an async fixture from inside the running loop.
    async with serve(create_app(api_settings)) as client:
        yield client


@pytest.fixture(scope="session")
def token(api_settings: Settings) -> Callable[..., str]:
    """`token("user-1", "wallet:self")` is a dev token; keyword arguments override claims."""

    def make(sub: str, *scopes: str, ttl: int = 3600, **claims: Any) -> str:
        return mint_token(api_settings, sub=sub, scopes=scopes, ttl=ttl, **claims)

    return make


@dataclass(frozen=True)
class Auth:
    """Authorization headers for the three kinds of caller."""

    token: Callable[..., str]

    def bearer(self, value: str) -> Headers:
        return {"Authorization": f"Bearer {value}"}

    def customer(self, user_id: str) -> Headers:
        return self.bearer(self.token(user_id, SCOPE_CUSTOMER))

    def service(self) -> Headers:
        return self.bearer(self.token("booking-service", SCOPE_SERVICE))

    def admin(self, key: str | None = None) -> Headers:
        headers = self.bearer(self.token("admin-1", SCOPE_ADMIN))
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers


@pytest.fixture(scope="session")
def auth(token: Callable[..., str]) -> Auth:
    return Auth(token)


@dataclass(frozen=True)
class LedgerSnapshot:
    rows: int
    wallets: int
    holds: int
    wallet: tuple[int, int, int, int] | None  # balance, held, lifetime, version of one user


async def snapshot(engine: AsyncEngine, user_id: str | None = None) -> LedgerSnapshot:
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM wallet_transactions), "
                    "(SELECT count(*) FROM wallets), (SELECT count(*) FROM holds)"
                )
            )
        ).one()
        wallet = None
        if user_id is not None:
            row = (
                await conn.execute(
                    text(
                        "SELECT balance, held, lifetime_points, version FROM wallets "
                        "WHERE user_id = :u"
                    ),
                    {"u": user_id},
                )
            ).first()
            wallet = tuple(row) if row else None
    return LedgerSnapshot(counts[0], counts[1], counts[2], wallet)  # type: ignore[arg-type]
