"""The Temporal worker: every workflow in workflows.registry and every activity from
activities.build_activities, on settings.temporal_task_queue.

    python worker.py

Reads the same settings as the API (DATABASE_URL, TEMPORAL_ADDRESS, ...). Exits non-zero with a
one-line message when PostgreSQL or Temporal cannot be reached; SIGINT / SIGTERM stop it cleanly.

Observability (loyalty.observability): its own Prometheus metrics on WORKER_METRICS_PORT, the
Temporal SDK's on TEMPORAL_SDK_METRICS_PORT (a temporalio Runtime of this process's own: only
`main` makes it, so workers built in other processes, the tests', bind no port), traces when
OTEL_EXPORTER_OTLP_ENDPOINT is set, log lines as LOG_FORMAT says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import prometheus_client
from sqlalchemy import text
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import activities
from loyalty.core import event_loop
from loyalty.core.db import make_engine
from loyalty.core.payload_encryption import PayloadKeyError
from loyalty.core.settings import Settings
from loyalty.core.stripe_client import async_stripe_client
from loyalty.core.temporal import connect, data_converter, precompile_for_sandbox
from loyalty.expiry.schedule import ensure_expiry_schedule
from loyalty.ledger.schedule import ensure_invariants_schedule
from loyalty.observability import logs, tracing
from loyalty.reconciliation.schedule import ensure_reconciliation_schedule
from loyalty.tiers.schedule import ensure_tier_schedule
from workflows import registry
from workflows.registry import WORKFLOWS

# Workflows run outside temporalio's sandbox unless WORKFLOW_SANDBOX is set (loyalty.core.settings).
# In the sandbox (the test suite's in-process workers, and history replays), the loyalty modules
# workflows use (pydantic models, pure rules) are passed through: the sandbox would otherwise
# re-import them for every workflow run. The workflow modules themselves are not, so the sandbox
# still refuses `datetime.now()` and the like in workflow code.
PASSTHROUGH_MODULES = ("loyalty",)
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
)


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    return WORKFLOW_RUNNER if sandboxed else UnsandboxedWorkflowRunner()


def build_worker(
    client: Client, deps: activities.Dependencies, task_queue: str, **tuning: Any
) -> Worker:
    """The one place that decides what a worker runs; tests use it too, and the saga benchmark
    passes `tuning` (further temporalio Worker options) to try them."""
    sandboxed = deps.settings.workflow_sandbox
    if sandboxed:
        precompile_for_sandbox(Path(registry.__file__).parent)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities.build_activities(deps),
        workflow_runner=workflow_runner(sandboxed),
        graceful_shutdown_timeout=timedelta(seconds=10),
        **tuning,
    )


def _say(message: str) -> None:
    print(f"worker: {message}", file=sys.stderr, flush=True)


async def run(settings: Settings) -> int:
    if not settings.database_url:
        _say("DATABASE_URL is not set (`make run` sets it; see README)")
        return 2
    try:
        converter = data_converter(settings)  # unusable payload keys stop the worker here
    except PayloadKeyError as exc:
        _say(f"cannot encrypt Temporal payloads: {exc}")
        return 2
    db_label = make_url(settings.database_url).render_as_string(hide_password=True)
    temporal_target = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"

    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        points_validity_months=settings.points_validity_months,
    )
    try:
        try:
            async with asyncio.timeout(10), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            _say(f"cannot reach PostgreSQL at {db_label}: {_reason(exc)}")
            return 1
        try:
            async with asyncio.timeout(15):
                client = await connect(
                    settings,
                    converter=converter,
                    interceptors=tracing.temporal_interceptors(),
                    runtime=sdk_runtime(settings),
                )
        except (RuntimeError, TimeoutError) as exc:
            _say(
                f"cannot reach Temporal at {temporal_target} "
                f"(namespace {settings.temporal_namespace}): {_reason(exc)}"
            )
            return 1

        outcome = await ensure_tier_schedule(client, settings)
        _say(
            f"schedule tier-evaluation {outcome} (daily at {settings.tier_evaluation_time} "
            f"{settings.tier_evaluation_timezone})"
        )
        outcome = await ensure_expiry_schedule(client, settings)
        _say(
            f"schedule points-expiry {outcome} (daily at {settings.points_expiry_time} "
            f"{settings.points_expiry_timezone})"
        )
        outcome = await ensure_invariants_schedule(client, settings)
        _say(
            f"schedule ledger-invariants {outcome} "
            f"(every {settings.ledger_invariants_interval_seconds}s)"
        )
        outcome = await ensure_reconciliation_schedule(client, settings)
        _say(
            f"schedule ledger-reconciliation {outcome} "
            f"(every {settings.reconciliation_interval_seconds}s)"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async with async_stripe_client(settings) as stripe_client:
            deps = activities.Dependencies(settings=settings, engine=engine, stripe=stripe_client)
            async with build_worker(client, deps, settings.temporal_task_queue):
                _say(
                    f"started on task queue {settings.temporal_task_queue!r} at "
                    f"{temporal_target} (event loop {event_loop.chosen()}, workflow sandbox "
                    f"{'on' if settings.workflow_sandbox else 'off'}); workflows: "
                    f"{', '.join(w.__name__ for w in WORKFLOWS) or 'none'}"
                )
                await stop.wait()
                _say("stopping (waiting for running activities up to 10s)")
        _say("stopped")
        return 0
    finally:
        await engine.dispose()


def sdk_runtime(settings: Settings) -> Runtime | None:
    """A Runtime exporting the SDK's metrics (workflow task and activity latencies,
    schedule-to-start, sticky cache ...) for Prometheus, or None (the SDK's default) when
    TEMPORAL_SDK_METRICS_PORT is 0. Durations in seconds and `_total` counters, as
    prometheus-client names them."""
    if not settings.temporal_sdk_metrics_port:
        return None
    address = f"{settings.metrics_host}:{settings.temporal_sdk_metrics_port}"
    prometheus = PrometheusConfig(
        bind_address=address, counters_total_suffix=True, durations_as_seconds=True
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def start_metrics(settings: Settings) -> None:
    """The worker's own metrics (business counters, process figures) for Prometheus."""
    if settings.worker_metrics_port:
        prometheus_client.start_http_server(
            settings.worker_metrics_port, addr=settings.metrics_host
        )
        _say(f"metrics on {settings.metrics_host}:{settings.worker_metrics_port}/metrics")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def main() -> None:
    settings = Settings()
    # The SDK's and the workflows' and activities' warnings and errors (an invariant check that
    # found violations among them) on stderr beside the `worker:` lines, each with its level.
    logs.configure(settings.log_format, logging.WARNING)
    # A business refusal (not enough points, over the cap ...) is an expected outcome: one line
    # at info each (activities.support), no traceback.
    logging.getLogger("loyalty.activities").setLevel(logging.INFO)
    start_metrics(settings)
    tracing.configure(settings, "loyalty-worker")
    try:
        status = event_loop.run(run(settings))
    except KeyboardInterrupt:
        status = 130
    tracing.shutdown()  # the spans still batched
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK can abort during interpreter shutdown (temporalio/sdk-python#300),
    # turning a clean stop into status 134; leave without running finalizers.
    os._exit(status)


if __name__ == "__main__":
    main()
