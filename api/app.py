"""The FastAPI application.

Run it with the factory (no work at import time):

    uvicorn --factory api.app:create_app

The lifespan makes the database engine once (app.state.engine) and disposes it on exit;
app.state.settings holds the settings, app.state.token_verifier the JWT verifier (it caches the
JWKS), app.state.temporal a Temporal client connected on first use (api.temporal), and
app.state.payload_codec the codec of that client's data converter, which the codec server uses
(the keys are loaded when the app is made, so an API without usable keys refuses to start).
Metrics, traces, request ids and the probes: api.telemetry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import errors, pages, telemetry
from api.auth import SECURITY_SCHEME, TokenVerifier
from api.body_limits import BodyLimits
from api.routers import ROUTERS
from api.routers.codec import CodecCors
from api.temporal import LazyTemporalClient
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings

DESCRIPTION = """Points wallet and loyalty service.

Authentication: OAuth2 bearer JWTs. Each operation lists the scopes that may call it as
alternative security requirements (any one of them is enough). Errors are JSON
`{"code", "message", "details"?}` with a stable `code`. Points and money are integers
(money in minor units)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set (the run command sets it for you)")
        app.state.engine = make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            points_validity_months=settings.points_validity_months,
        )
        telemetry.start(app)
        try:
            yield
        finally:
            telemetry.stop(app)
            await app.state.engine.dispose()

    app = FastAPI(
        title="Loyalty wallet",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=telemetry.fastapi_telemetry(settings),
    )
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.temporal = LazyTemporalClient(settings)
    app.state.payload_codec = app.state.temporal.converter.payload_codec
    errors.install(app)
    app.add_middleware(BodyLimits)
    app.add_middleware(CodecCors, origins=settings.codec_origins)
    telemetry.install(app, settings)  # outermost: it times and counts what BodyLimits refuses
    for router in ROUTERS:
        app.include_router(router)
    pages.install(app)
    app.openapi = _scoped_openapi(app)  # type: ignore[method-assign]
    return app


def _scoped_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI whose `security` lists each accepted scope as an alternative requirement.

    FastAPI puts all scopes of an operation in one requirement, which in OpenAPI means all are
    needed; our scope guards (api.auth.require_scope) accept any one of them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict) and "security" in operation:
                    operation["security"] = _alternatives(operation["security"])
        app.openapi_schema = schema
        return schema

    return openapi


def _alternatives(security: list[dict[str, list[str]]]) -> list[dict[str, list[str]]]:
    split: list[dict[str, list[str]]] = []
    for requirement in security:
        scopes = requirement.get(SECURITY_SCHEME, [])
        if list(requirement) == [SECURITY_SCHEME] and len(scopes) > 1:
            split += [{SECURITY_SCHEME: [scope]} for scope in scopes]
        else:
            split.append(requirement)
    return split
