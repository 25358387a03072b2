"""Request bodies are bounded before anything parses them: in size (413) and in how deep their
JSON nests (422). Python's JSON parser recurses once per level, so a body of 100,000 nested
arrays raises RecursionError in the parser (a 500) whether it comes to an endpoint or, validly
signed, to the Stripe webhook; no body this API takes nests deeper than a few levels.

An ASGI middleware, so it covers every route, the webhook included, and costs one pass over
the body's bytes; the body is then handed on unchanged."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024  # far above any request of this API; Stripe's events are < 100 kB
MAX_JSON_DEPTH = 32

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects deeper than `limit` (brackets inside
    strings do not count). Malformed JSON is left for the parser to refuse."""
    if body.count(b"[") + body.count(b"{") <= limit:  # cannot nest deeper: the common case
        return False
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        if bracket[0] in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"code": code, "message": message})


class BodyLimits:
    """Refuse request bodies over MAX_BODY_BYTES or nesting deeper than MAX_JSON_DEPTH."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await _too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if json_depth_exceeds(body):
            refusal = _refusal(
                422, "validation_error", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replaying(body, receive), send)


def _too_large() -> JSONResponse:
    return _refusal(413, "body_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body read here, then passes on what comes after (the
    client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
