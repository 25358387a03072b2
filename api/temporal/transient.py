"""Temporal's passing refusals, retried inside the API's client calls.

A busy or restarting server answers RESOURCE_EXHAUSTED (a rate limit), UNAVAILABLE (a shard
moving) or, to an update-with-start that meets a workflow not ready for it, FAILED_PRECONDITION
with a WorkflowNotReadyFailure (seen under load as 500s). None means the request is wrong, and
the calls retried here are safe to repeat: an update-with-start attaches to its own update id, a
start meets the workflow it started, and the workflows take a repeated signal as news they
already have. So the client tries again, with backoff, for up to RETRY_SECONDS; after that the
caller gets a 503 with Retry-After, never a 500.

Installed as a client interceptor (api.temporal.LazyTemporalClient), so every call the API
makes gets it without each caller writing the loop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from google.protobuf.any_pb2 import Any as Any_
from temporalio.api.errordetails.v1 import (
    MultiOperationExecutionFailure,
    WorkflowNotReadyFailure,
)
from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ServiceUnavailable

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0
TRANSIENT = frozenset({RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE})

T = TypeVar("T")


class TemporalBusy(ServiceUnavailable):
    """Temporal kept refusing for a passing reason: try again shortly (503, Retry-After)."""

    response_headers: ClassVar[Mapping[str, str]] = {"Retry-After": "1"}


def is_transient(err: BaseException) -> bool:
    """A refusal that a later try may not meet: rate limited, unavailable, or a workflow not
    ready for an update (FAILED_PRECONDITION with WorkflowNotReadyFailure, also inside the
    MultiOperationExecutionFailure of an update-with-start)."""
    if not isinstance(err, RPCError):
        return False
    if err.status in TRANSIENT:
        return True
    return err.status == RPCStatusCode.FAILED_PRECONDITION and _not_ready(err.grpc_status.details)


def _not_ready(details: Iterable[Any_]) -> bool:
    for detail in details:
        if detail.Is(WorkflowNotReadyFailure.DESCRIPTOR):
            return True
        multi = MultiOperationExecutionFailure()
        if detail.Unpack(multi) and any(_not_ready(status.details) for status in multi.statuses):
            return True
    return False


async def retrying(call: Callable[[], Awaitable[T]], what: str, deadline: float) -> T:
    """`call()`, tried again on transient refusals until `deadline` seconds have passed."""
    started = time.monotonic()
    backoff = FIRST_BACKOFF_SECONDS
    attempt = 1
    while True:
        try:
            return await call()
        except RPCError as err:
            if not is_transient(err):
                raise
            if time.monotonic() - started + backoff > deadline:
                log.warning("%s: Temporal still refuses after %d tries: %s", what, attempt, err)
                raise TemporalBusy("Temporal is busy; try again shortly", attempts=attempt) from err
            log.info("%s: Temporal refused for now (%s), retrying", what, err.status.name)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        attempt += 1


class TransientRetries(Interceptor):
    """The client interceptor: starts, updates and signals retried on transient refusals."""

    def __init__(self, deadline: float = RETRY_SECONDS) -> None:
        self.deadline = deadline

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Retrying(next, self.deadline)


class _Retrying(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, deadline: float) -> None:
        super().__init__(next)
        self._deadline = deadline

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        return await retrying(
            lambda: self.next.start_workflow(input), f"start {input.id}", self._deadline
        )

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        await retrying(
            lambda: self.next.signal_workflow(input),
            f"signal {input.signal} to {input.id}",
            self._deadline,
        )

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        return await retrying(
            lambda: self.next.start_workflow_update(input),
            f"update {input.update} of {input.id}",
            self._deadline,
        )

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        # The operation's handle is settled once, by the attempt that ends the call: a
        # transient refusal must not settle it before the retry.
        settle_error = input._on_start_error

        def unless_transient(err: BaseException) -> None:
            if not is_transient(err):
                settle_error(err)

        attempt = dataclasses.replace(input, _on_start_error=unless_transient)
        try:
            return await retrying(
                lambda: self.next.start_update_with_start_workflow(attempt),
                f"update-with-start {input.start_workflow_input.id}",
                self._deadline,
            )
        except TemporalBusy as busy:
            settle_error(busy)
            raise
