"""The event loop of the service's own long-running processes (the worker; the benchmarks'
processes): uvloop when it is installed, as uvicorn already picks for the API, else asyncio's.

asyncpg and aiohttp spend less CPU per round trip on uvloop. `LOYALTY_EVENT_LOOP=asyncio` keeps
asyncio's own loop (for comparison, or when uvloop misbehaves somewhere)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHOICES = ("uvloop", "asyncio")


def chosen() -> str:
    """The loop `run` uses: LOYALTY_EVENT_LOOP if set, else uvloop when installed."""
    wanted = os.environ.get("LOYALTY_EVENT_LOOP", "").strip().lower()
    if wanted and wanted not in CHOICES:
        raise ValueError(f"LOYALTY_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {wanted!r}")
    if wanted == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if wanted == "uvloop":
            raise ValueError("LOYALTY_EVENT_LOOP=uvloop, but uvloop is not installed")
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], loop: str | None = None) -> T:
    """Run `main` on `loop` (one of CHOICES; a benchmark's own option), else on `chosen()`."""
    if (loop or chosen()) == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
