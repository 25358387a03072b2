"""Temporal client construction shared by the API, the worker and the CLIs."""

from __future__ import annotations

import compileall
import contextlib
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime

from loyalty.core.payload_encryption import encrypting
from loyalty.core.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """The one data converter of clients, workers and replayers: pydantic models as JSON,
    then each payload encrypted with the keys of `settings` (loyalty.core.payload_encryption)."""
    return encrypting(pydantic_data_converter, settings)


async def connect(
    settings: Settings,
    *,
    address: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
    converter: DataConverter | None = None,
) -> Client:
    """Connect with the service's data converter (the same on client, worker and Replayer)
    and the caller's client interceptors; `runtime`: the worker process's own (its SDK metrics
    exporter), else the SDK's default; `converter`: one made already by `data_converter`."""
    target = address or settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=converter or data_converter(settings),
        tls=settings.temporal_tls,
        interceptors=interceptors,
        runtime=runtime,
    )


def precompile_for_sandbox(package_dir: Path) -> None:
    """Write bytecode for the workflow modules in `package_dir`. The sandbox imports a workflow's
    module afresh for every workflow run; without bytecode on disk (PYTHONDONTWRITEBYTECODE=1, as
    on our development machines and in many container images) each of those imports compiles
    the source again, about 1.3 ms of CPU per module per run. A read-only tree is left as is."""
    with contextlib.suppress(OSError):
        compileall.compile_dir(package_dir, quiet=1)
