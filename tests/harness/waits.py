"""Bounded waits: a workflow that never ends fails its test with a timeout instead of hanging
the run. Bounds are generous (a busy 2-core machine runs the whole stack); nothing here is a
speed assertion."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float = 60) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


async def eventually(
    check: Callable[[], Awaitable[T | None]], seconds: float = 60, every: float = 0.1
) -> T:
    """The first truthy value `check()` returns, polled until `seconds` have passed."""
    async with asyncio.timeout(seconds):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(every)


async def workflow_result(
    client: Client, workflow_id: str, result_type: type[T], seconds: float = 60
) -> T:
    handle = client.get_workflow_handle(workflow_id, result_type=result_type)
    return await within(handle.result(), seconds)
