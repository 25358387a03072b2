"""The FastAPI application.

Run it with the factory (no work at import time):

    uvicorn --factory api.app:create_app

The lifespan makes the database engine once (app.state.engine) and disposes it on exit;
app.state.settings holds the settings, app.state.token_verifier the JWT verifier (it caches the
JWKS), and app.state.temporal a Temporal client connected on first use (api.temporal).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api import errors
from api.auth import SECURITY_SCHEME, TokenVerifier
from api.routers import ROUTERS
from api.temporal import LazyTemporalClient
from loyalty.db import make_engine
from loyalty.settings import Settings

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
        app.state.engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        try:
            yield
        finally:
            await app.state.engine.dispose()

    app = FastAPI(
        title="Loyalty wallet",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.temporal = LazyTemporalClient(settings)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = _scoped_openapi(app)  # type: ignore[method-assign]
    return app


def _required_scopes(dependant: Dependant) -> tuple[str, ...]:
    def walk(node: Dependant) -> Iterator[tuple[str, ...]]:
        scopes = getattr(node.call, "required_scopes", None)
        if scopes:
            yield scopes
        for child in node.dependencies:
            yield from walk(child)

    found = list(walk(dependant))
    return found[0] if found else ()


def _scoped_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI whose `security` lists each accepted scope as an alternative requirement.

    FastAPI would put all scopes of an operation in one requirement (meaning all are needed);
    our endpoints accept any one of them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        # The routers' own routes: app.routes nests included routers in recent FastAPI, and
        # create_app includes every router of ROUTERS without a prefix.
        for route in (r for router in ROUTERS for r in router.routes):
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            scopes = _required_scopes(route.dependant)
            if not scopes:
                continue
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                operation["security"] = [{SECURITY_SCHEME: [scope]} for scope in scopes]
        app.openapi_schema = schema
        return schema

    return openapi
