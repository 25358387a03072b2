"""Log lines: JSON objects, one per line, when LOG_FORMAT=json (for a log shipper), plain text
otherwise (development). Each names, where known, the request id, the trace and span ids, the
booking id and the workflow id: the request's middleware and the code that learns a booking id
set them in context (`bind`), an activity's come from Temporal's activity info.

Expected refusals (a LoyaltyError, an HTTP 4xx) are logged by their callers at info in one
line; errors at error level with their traceback (`exc_info`)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from temporalio import activity

# An immutable mapping as the default: `bind` always sets a new dict, never mutates one.
_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "loyalty_log_context", default=MappingProxyType({})
)
# LogRecord attributes that are the record's own, not extras a caller passed.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def bind(**fields: str | None) -> contextvars.Token[Mapping[str, str]]:
    """Add fields (request_id, booking_id, workflow_id ...) to every line logged in this
    context from now on; returns the token to reset it with."""
    added = {key: value for key, value in fields.items() if value is not None}
    return _CONTEXT.set({**_CONTEXT.get(), **added})


def reset(token: contextvars.Token[Mapping[str, str]]) -> None:
    _CONTEXT.reset(token)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        reset(token)


def context_fields(*, activity_fields: bool = True) -> dict[str, str]:
    """The fields known here: bound ones, the current span's trace, the running activity's."""
    fields = dict(_CONTEXT.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    if activity_fields and activity.in_activity():
        info = activity.info()
        fields.setdefault("workflow_id", info.workflow_id or "")
        fields.setdefault("activity", info.activity_type)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(),
        }
        for key, value in record.__dict__.items():  # extras: logger.info(..., extra={...})
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """`LEVEL logger: message [request_id=... booking_id=...]`, traceback below on errors."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # The SDK's activity logger already names the activity and workflow in the message.
        fields = context_fields(activity_fields=False)
        fields.pop("span_id", None)
        if not fields:
            return line
        head, _, rest = line.partition("\n")
        tail = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{head} [{tail}]" + (f"\n{rest}" if rest else "")


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Root handler on stderr in the chosen format; uvicorn's loggers go through it too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # A line per outgoing call (JWKS fetches, Stripe) at info would drown the service's own.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
