"""The API's part of observability (loyalty.observability): a request id, a log line per
refused or failed request, request metrics, /metrics, traces, and the liveness and readiness
probes (api.routers.health).

One pure ASGI middleware does the per-request work (cheaper than Starlette's
BaseHTTPMiddleware): it takes the caller's X-Request-ID (or makes one), binds it to the log
context and answers with it, and counts the request by route template (never the raw path, so
a scan of random URLs adds one `unmatched` series, not one per URL) and status."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from loyalty.core.settings import Settings
from loyalty.observability import logs, metrics, tracing
from loyalty.observability.state import StateCollector

REQUEST_ID = "x-request-id"
_MAX_REQUEST_ID = 128


class RequestTelemetry:
    def __init__(self, app: ASGIApp, *, metrics_enabled: bool = True) -> None:
        self.app = app
        self.metrics_enabled = metrics_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = logs.bind(request_id=request_id)
        status = 500  # unless the app answers
        started = time.perf_counter()
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if answered:
                raise
            # Answered here rather than by Starlette's outermost error middleware, so the 500
            # carries the request id and its log line (with the traceback) names the request.
            response = await errors.unexpected_error(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            if self.metrics_enabled:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                method = scope["method"]
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
            logs.reset(token)


class SampledOnly:
    """With tracing on: a request whose trace is sampled out (its server span not recorded)
    runs with the libraries' instrumentation suppressed (`tracing.only_if_sampled`), and so do
    the scrapes and probes that make no span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan: what it starts must not inherit this
            await self.app(scope, receive, send)
            return
        with tracing.only_if_sampled():
            await self.app(scope, receive, send)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1").strip()
            # The caller's id, if it is a sane one (it goes into every log line).
            if 0 < len(given) <= _MAX_REQUEST_ID and given.isprintable():
                return given
            break
    return uuid.uuid4().hex


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format: the process's metrics and the ledger state (read now)."""
    state: CollectorRegistry = request.app.state.metrics_state
    # Rendered in a thread: the state collector waits for its query on this event loop.
    body = await asyncio.to_thread(_render, state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _render(state: CollectorRegistry) -> bytes:
    return generate_latest(REGISTRY) + generate_latest(state)


def fastapi_telemetry(settings: Settings) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry layer, given to `FastAPI(telemetry=...)`: one server span
    per request, named by its route template, when tracing is on; nothing at all otherwise.

    FastAPI's layer rather than opentelemetry-instrumentation-fastapi: it starts the same
    server span with about a third less CPU per request (bench/README.md, "Telemetry"), and two
    layers would both run. Its request metrics and log records stay off (Prometheus counts
    requests, RequestTelemetry; logs are ours), and so do its operation spans (dependency
    resolution, endpoint, serialization: three more spans per request that the server span
    and its SQL spans already time)."""
    on = tracing.configure(settings, "loyalty-api")
    return {
        "tracing": on,
        "tracer_provider": tracing.provider(),
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "auto_configure": False,
        "exclude": _untraced,
    }


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    # Scrapes and liveness probes: a trace each every few seconds that tells nothing.
    return scope.get("path") in _UNTRACED_PATHS


_UNTRACED_PATHS = frozenset({"/metrics", "/health/live"})


def install(app: FastAPI, settings: Settings) -> None:
    """Wire the API's request ids, request metrics and /metrics into `app` (the engine's state
    collector joins at start-up, `start`; the server spans come with the app,
    `fastapi_telemetry`)."""
    if tracing.provider() is not None:
        app.add_middleware(SampledOnly)
    app.add_middleware(RequestTelemetry, metrics_enabled=settings.metrics_enabled)
    if settings.metrics_enabled:
        app.include_router(metrics_router)
    app.state.metrics_state = CollectorRegistry(auto_describe=False)


def start(app: FastAPI) -> None:
    """At start-up, once the engine exists: the ledger state collector reads through it."""
    state: CollectorRegistry = app.state.metrics_state
    collector = StateCollector(app.state.engine, asyncio.get_running_loop())
    app.state.metrics_collector = collector
    state.register(collector)


def stop(app: FastAPI) -> None:
    collector: Any = getattr(app.state, "metrics_collector", None)
    if collector is not None:
        app.state.metrics_state.unregister(collector)
        app.state.metrics_collector = None
