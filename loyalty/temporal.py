"""Temporal client construction shared by the API, the worker and the CLIs."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from loyalty.settings import Settings


async def connect(settings: Settings, *, address: str | None = None) -> Client:
    """Connect with the pydantic data converter (the same one on client, worker and Replayer)."""
    target = address or settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=settings.temporal_tls,
    )
