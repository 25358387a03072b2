"""loyalty.core.event_loop: the worker's loop is uvloop unless LOYALTY_EVENT_LOOP says asyncio."""

from __future__ import annotations

import asyncio

import pytest

from loyalty.core import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOYALTY_EVENT_LOOP", raising=False)
    assert event_loop.chosen() == "uvloop"
    assert event_loop.run(_loop_module()).startswith("uvloop")


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_EVENT_LOOP", " AsyncIO ")
    assert event_loop.chosen() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")


def test_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="LOYALTY_EVENT_LOOP must be one of uvloop, asyncio"):
        event_loop.chosen()


def test_an_explicit_loop_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A benchmark's --loop option: the loop it names, whatever LOYALTY_EVENT_LOOP says.
    monkeypatch.setenv("LOYALTY_EVENT_LOOP", "uvloop")
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")
    monkeypatch.setenv("LOYALTY_EVENT_LOOP", "asyncio")
    assert event_loop.run(_loop_module(), "uvloop").startswith("uvloop")
