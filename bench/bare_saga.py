"""The bare saga: the redemption saga's shape with nothing of ours in it, as the baseline the
redemption benchmark compares against on the same Temporal server.

Update-with-start (`hold`, answered after one trivial local activity), then a `paid` signal, then
completion. No database, no Stripe, no search attributes. Its worker runs workflows in the
sandbox exactly when ours does (WORKFLOW_SANDBOX).

    python bench/bare_saga.py worker --address 127.0.0.1:7233 --task-queue bare

runs a worker for it (bench/redemption.py starts one as a subprocess, like our worker)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy


@activity.defn(name="bare_hold")
async def bare_hold(booking_id: str) -> str:
    return f"hold-{booking_id}"


@workflow.defn(name="BareSaga")
class BareSaga:
    @workflow.init
    def __init__(self, booking_id: str) -> None:
        self._hold: str | None = None
        self._paid = False

    @workflow.update
    async def hold(self, booking_id: str) -> str:
        self._hold = await workflow.execute_local_activity(
            bare_hold, booking_id, start_to_close_timeout=timedelta(seconds=10)
        )
        return self._hold

    @workflow.update
    async def hold_remote(self, booking_id: str) -> str:
        """The same hold as an ordinary (remote) activity: what local activities save."""
        self._hold = await workflow.execute_activity(
            bare_hold, booking_id, start_to_close_timeout=timedelta(seconds=10)
        )
        return self._hold

    @workflow.signal
    def paid(self) -> None:
        self._paid = True

    @workflow.run
    async def run(self, booking_id: str) -> str:
        await workflow.wait_condition(lambda: self._paid and self._hold is not None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return f"captured {self._hold}"


async def hold(client: Client, task_queue: str, booking_id: str, *, remote: bool = False) -> str:
    """The booking service's call: start the saga and get the hold, in one round trip."""
    operation = WithStartWorkflowOperation(
        BareSaga.run,
        booking_id,
        id=f"bare-{booking_id}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return await client.execute_update_with_start_workflow(
        BareSaga.hold_remote if remote else BareSaga.hold,
        booking_id,
        start_workflow_operation=operation,
        id=booking_id,
    )


async def pay(client: Client, booking_id: str) -> None:
    await client.get_workflow_handle(f"bare-{booking_id}").signal(BareSaga.paid)


def build_worker(client: Client, task_queue: str, *, sandboxed: bool, **tuning: int) -> object:
    """Like our worker: temporalio's sandbox only when WORKFLOW_SANDBOX asks for it."""
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BareSaga],
        activities=[bare_hold],
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        **tuning,  # type: ignore[arg-type]
    )


async def _serve(address: str, task_queue: str) -> None:
    # The workflow must come from its importable module, not __main__: the sandbox re-imports it.
    from bench import bare_saga
    from loyalty.core.settings import Settings
    from loyalty.core.temporal import connect, precompile_for_sandbox

    settings = Settings(environment="test")
    client = await connect(settings, address=address)
    if settings.workflow_sandbox:
        precompile_for_sandbox(Path(bare_saga.__file__).parent)  # as worker.build_worker does
    worker = bare_saga.build_worker(client, task_queue, sandboxed=settings.workflow_sandbox)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with worker:  # type: ignore[attr-defined]
        print(f"bare worker started on task queue {task_queue!r}", file=sys.stderr, flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("worker", help="run a worker for the bare saga")
    serve.add_argument("--address", required=True)
    serve.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    from bench import kit
    from loyalty.core import event_loop

    event_loop.run(_serve(args.address, args.task_queue))
    kit.finish(0)


if __name__ == "__main__":
    main()
