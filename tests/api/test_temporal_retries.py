"""The API's Temporal client retries Temporal's passing refusals and answers 503 with
Retry-After once they outlast its deadline: against a real dev server that stops and comes back,
and for the refusal an update-with-start meets under load (WorkflowNotReady), whose shape is
built here from Temporal's own protobuf messages."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.common.v1 import GrpcStatus
from temporalio.api.errordetails.v1 import (
    MultiOperationExecutionFailure,
    WorkflowNotReadyFailure,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import devstack
from api.temporal.transient import TemporalBusy, TransientRetries, is_transient


def _packed(message) -> AnyProto:
    packed = AnyProto()
    packed.Pack(message)
    return packed


def _rpc_error(code: RPCStatusCode, *details) -> RPCError:
    status = GrpcStatus(code=code.value, message="refused", details=[_packed(d) for d in details])
    return RPCError("refused", code, status.SerializeToString())


def test_passing_refusals_are_told_from_lasting_ones():
    not_ready = WorkflowNotReadyFailure()
    multi = MultiOperationExecutionFailure()
    multi.statuses.add(code=RPCStatusCode.FAILED_PRECONDITION.value, details=[_packed(not_ready)])
    transient = [
        _rpc_error(RPCStatusCode.RESOURCE_EXHAUSTED),
        _rpc_error(RPCStatusCode.UNAVAILABLE),
        _rpc_error(RPCStatusCode.FAILED_PRECONDITION, not_ready),
        _rpc_error(RPCStatusCode.FAILED_PRECONDITION, multi),
    ]
    lasting = [
        _rpc_error(RPCStatusCode.FAILED_PRECONDITION),
        _rpc_error(RPCStatusCode.INVALID_ARGUMENT, not_ready),
        _rpc_error(RPCStatusCode.NOT_FOUND),
        _rpc_error(RPCStatusCode.ALREADY_EXISTS),
        ValueError("not an RPC error"),
    ]
    assert [is_transient(err) for err in transient] == [True] * len(transient)
    assert [is_transient(err) for err in lasting] == [False] * len(lasting)


def test_the_busy_answer_is_a_503_that_says_when_to_retry():
    busy = TemporalBusy("Temporal is busy; try again shortly")
    assert busy.status_code == 503
    assert busy.code == "service_unavailable"
    assert busy.response_headers == {"Retry-After": "1"}


@pytest.mark.timeout(180)
async def test_a_call_outlasts_a_server_restart_and_a_short_deadline_ends_in_503(tmp_path: Path):
    port = devstack.free_port()

    def start() -> object:
        return devstack.start_temporal(port=port, ui_port=None, db_file=tmp_path / "t.db")

    server = start()
    try:
        patient = await Client.connect(f"127.0.0.1:{port}", interceptors=[TransientRetries(60)])
        hasty = await Client.connect(f"127.0.0.1:{port}", interceptors=[TransientRetries(0.5)])
        await patient.start_workflow("Nothing", id=f"up-{uuid.uuid4()}", task_queue="none")
        devstack.stop_process(server)

        with pytest.raises(TemporalBusy):
            await hasty.start_workflow("Nothing", id=f"down-{uuid.uuid4()}", task_queue="none")

        workflow_id = f"back-{uuid.uuid4()}"
        waiting = asyncio.create_task(
            patient.start_workflow("Nothing", id=workflow_id, task_queue="none")
        )
        await asyncio.sleep(2)
        assert not waiting.done()
        server = start()
        started = time.monotonic()
        handle = await asyncio.wait_for(waiting, timeout=90)
        assert handle.id == workflow_id
        assert time.monotonic() - started < 60
        assert (await handle.describe()).id == workflow_id
    finally:
        devstack.stop_process(server)
