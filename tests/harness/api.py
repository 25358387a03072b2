"""The API as tests call it: in process over ASGI, or served by uvicorn on a free port (for
callers outside this process: localstripe's webhooks), with tokens for every kind of caller."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

import devstack
from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings

Headers = dict[str, str]


@dataclass(frozen=True)
class Auth:
    """Authorization headers for the three kinds of caller, with an Idempotency-Key if given."""

    settings: Settings

    def bearer(self, sub: str, *scopes: str, ttl: int = 3600, **claims: Any) -> Headers:
        token = mint_token(self.settings, sub=sub, scopes=scopes, ttl=ttl, **claims)
        return {"Authorization": f"Bearer {token}"}

    def _with_key(self, headers: Headers, key: str | None) -> Headers:
        return headers if key is None else {**headers, "Idempotency-Key": key}

    def customer(self, user_id: str, key: str | None = None) -> Headers:
        return self._with_key(self.bearer(user_id, SCOPE_CUSTOMER), key)

    def service(self, key: str | None = None) -> Headers:
        return self._with_key(self.bearer("booking-service", SCOPE_SERVICE), key)

    def admin(self, key: str | None = None) -> Headers:
        return self._with_key(self.bearer("admin-1", SCOPE_ADMIN), key)


@dataclass(frozen=True)
class Api:
    """An HTTP client of the API and the headers of its callers."""

    http: httpx.AsyncClient
    auth: Auth
    url: str | None = None  # set when served on a port

    @property
    def settings(self) -> Settings:
        return self.auth.settings

    @property
    def service(self) -> Headers:
        return self.auth.service()

    @property
    def admin(self) -> Headers:
        return self.auth.admin()

    def customer(self, user_id: str) -> Headers:
        return self.auth.customer(user_id)

    async def wallet(self, user_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/wallets/{user_id}", headers=self.customer(user_id))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def event(self, **event: Any) -> httpx.Response:
        """POST /booking-events (an event id is made up unless given)."""
        event.setdefault("event_id", f"ev-{uuid.uuid4().hex[:12]}")
        return await self.http.post("/booking-events", headers=self.service, json={"event": event})


@contextlib.asynccontextmanager
async def in_process(app: FastAPI, **transport: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client talking to `app` in process, with the app's lifespan running around it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, **transport), base_url="http://loyalty.test"
        ) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Api]:
    """The API under uvicorn in this process on a free port."""
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        yield Api(http, Auth(settings), url)


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """An ASGI app under uvicorn in this process on a free port; yields its URL."""
    port = devstack.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def point_webhooks(settings: Settings, api_url: str, webhook_id: str = "tests") -> None:
    """Send localstripe's webhooks to this API (one id re-pointed by every test, so servers of
    earlier tests get no deliveries)."""
    assert settings.stripe_api_base, "the settings name no localstripe"
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{settings.stripe_api_base}/_config/webhooks/{webhook_id}",
            data=devstack.localstripe_webhook_fields(
                f"{api_url}/webhooks/stripe", settings.stripe_webhook_secret
            ),
        )
        answer.raise_for_status()
